//! Webhooks as GHL sends them: flat JSON events with `timestamp` and `webhookId`, signed on the
//! raw body with Ed25519 (`X-GHL-Signature`) and RSA-SHA256 (`x-wh-signature`), both base64.
//! Delivery is lossy like GHL's: only a 429 answer is retried (6 times, `retry_delay` apart);
//! any other failure drops the event, and the `webhook-drop` fault loses a share of them
//! silently. Independent events are posted side by side (`webhook_concurrency` at once, as
//! GHL's many workers do), so their order is not guaranteed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use rsa::signature::SignatureEncoding;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::clock::{Clock, iso};
use super::ids::IdGen;
use super::stats::Stats;
use super::store::Event;

/// The sandbox's signing keys. Generated once per process (RSA generation takes a moment) and
/// shared by every sandbox in it.
pub struct Keys {
    ed25519: ed25519_dalek::SigningKey,
    rsa: rsa::pkcs1v15::SigningKey<Sha256>,
    /// Public halves, PEM (SPKI), for receivers.
    pub ed25519_public_pem: String,
    pub rsa_public_pem: String,
}

impl Keys {
    pub fn get() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = rand::rng();
            let ed25519 = ed25519_dalek::SigningKey::generate(&mut rng);
            let ed25519_public_pem = ed25519
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap_or_default();
            let private = rsa::PrivateKey::new(&mut rng, 2048).expect("RSA key generation");
            let rsa_public_pem = rsa::PublicKey::from(&private)
                .to_public_key_pem(LineEnding::LF)
                .unwrap_or_default();
            Keys {
                ed25519,
                rsa: rsa::pkcs1v15::SigningKey::<Sha256>::new(private),
                ed25519_public_pem,
                rsa_public_pem,
            }
        })
    }

    /// `(X-GHL-Signature, x-wh-signature)` for a raw body.
    pub fn sign(&self, body: &[u8]) -> (String, String) {
        // One `signature::Signer` trait serves both key types.
        use ed25519_dalek::Signer as _;
        let ed = self.ed25519.sign(body).to_bytes();
        let rsa = self.rsa.sign(body).to_bytes();
        (BASE64.encode(ed), BASE64.encode(rsa))
    }

    pub fn public_keys_json(&self) -> Value {
        json!({"ed25519": self.ed25519_public_pem, "rsa": self.rsa_public_pem})
    }
}

/// Queues events for delivery to one URL.
#[derive(Clone)]
pub struct Webhooks {
    sender: Option<mpsc::UnboundedSender<Bytes>>,
    ids: Arc<IdGen>,
    clock: Arc<Clock>,
}

impl Webhooks {
    /// Starts the delivery task when `url` is set; without it, events are discarded.
    pub fn start(
        url: Option<String>,
        delivery: Delivery,
        ids: Arc<IdGen>,
        clock: Arc<Clock>,
        stats: Arc<Stats>,
    ) -> Self {
        let sender = url.map(|url| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(deliver(url, rx, delivery, stats));
            tx
        });
        Self { sender, ids, clock }
    }

    /// Sends a location's events in order (the location id and envelope are added here).
    pub fn send(&self, location_id: &str, events: Vec<Event>) {
        let Some(sender) = &self.sender else {
            return;
        };
        for event in events {
            let mut payload = event.payload;
            payload.insert("type".into(), json!(event.kind));
            payload.insert("locationId".into(), json!(location_id));
            payload.insert("timestamp".into(), json!(iso(self.clock.now())));
            payload.insert("webhookId".into(), json!(self.ids.id()));
            let body = serde_json::to_vec(&Value::Object(payload)).unwrap_or_default();
            let _ = sender.send(Bytes::from(body));
        }
    }
}

/// How webhooks are delivered.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// Between retries of a webhook answered 429.
    pub retry_delay: Duration,
    /// Share lost silently.
    pub drop: f64,
    /// Seeds which ones are lost.
    pub seed: u64,
    /// Events posted at once.
    pub concurrency: usize,
}

async fn deliver(
    url: String,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    delivery: Delivery,
    stats: Arc<Stats>,
) {
    use rand::{RngExt, SeedableRng};
    let mut losses = rand::rngs::StdRng::seed_from_u64(delivery.seed ^ 0x005E_ED0F_DA7A);
    crate::tls::install_default_provider();
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    // GHL's workers post independent events side by side: up to `concurrency` in flight.
    let permits = Arc::new(tokio::sync::Semaphore::new(delivery.concurrency.max(1)));
    while let Some(body) = queue.recv().await {
        if delivery.drop > 0.0 && losses.random::<f64>() < delivery.drop {
            stats.webhooks_dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (http, url, stats) = (http.clone(), url.clone(), Arc::clone(&stats));
        tokio::spawn(async move {
            post_one(&http, &url, body, delivery.retry_delay, &stats).await;
            drop(permit);
        });
    }
}

/// Posts one event; retries only a 429, up to 6 times.
async fn post_one(
    http: &reqwest::Client,
    url: &str,
    body: Bytes,
    retry_delay: Duration,
    stats: &Stats,
) {
    let (ed25519, rsa) = Keys::get().sign(&body);
    let mut delivered = false;
    for attempt in 0..=6 {
        if attempt > 0 {
            tokio::time::sleep(retry_delay).await;
        }
        let answer = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-ghl-signature", &ed25519)
            .header("x-wh-signature", &rsa)
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(r) if r.status().as_u16() == 429 => {
                stats.webhooks_retried.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            Ok(r) if r.status().is_success() => {
                delivered = true;
                break;
            }
            _ => break,
        }
    }
    let counter = if delivered {
        &stats.webhooks_sent
    } else {
        &stats.webhooks_failed
    };
    counter.fetch_add(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use rsa::signature::Verifier as _;

    use super::*;

    #[test]
    fn signatures_verify_with_the_published_keys() {
        let keys = Keys::get();
        let body = br#"{"type":"ContactCreate","id":"abc"}"#;
        let (ed, rsa_sig) = keys.sign(body);

        let ed_key =
            ed25519_dalek::VerifyingKey::from_public_key_pem(&keys.ed25519_public_pem).unwrap();
        let ed_sig = ed25519_dalek::Signature::from_slice(&BASE64.decode(ed).unwrap()).unwrap();
        ed_key.verify_strict(body, &ed_sig).unwrap();
        assert!(ed_key.verify_strict(b"tampered", &ed_sig).is_err());

        let rsa_key = rsa::PublicKey::from_public_key_pem(&keys.rsa_public_pem).unwrap();
        let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(rsa_key);
        let sig =
            rsa::pkcs1v15::Signature::try_from(BASE64.decode(rsa_sig).unwrap().as_slice()).unwrap();
        verifier.verify(body, &sig).unwrap();
        assert!(verifier.verify(b"tampered", &sig).is_err());
    }
}
