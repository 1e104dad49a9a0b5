//! Sending one CloudEvent to one sink (network): an HTTP POST signed the Standard Webhooks way,
//! and what its answer means for the queue.

use std::time::Duration;

use reqwest::StatusCode;

use super::cloudevent::Envelope;
use super::queue::Attempt;
use super::signature::SigningKey;

/// How long a sink may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What an answer means: 2xx delivered; 429, 408 and 5xx retried (after `Retry-After` when
/// given); other 4xx refused for good. Pure.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, content: &str) -> Attempt {
    if status.is_success() {
        Attempt::Delivered {
            content: content.to_owned(),
        }
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Attempt::Retry {
            after: retry_after,
            error: format!("the sink answered {}", status.as_u16()),
        }
    } else {
        Attempt::Refused {
            error: format!("the sink refused the event: {}", status.as_u16()),
        }
    }
}

/// The longest `Retry-After` honoured (the queue caps its waits lower still).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3_600);

/// A `Retry-After` value at `now`: delay seconds, or an HTTP date (RFC 9110 §10.2.3; a date
/// past is no wait). Anything else is ignored (backoff applies). Pure.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(RETRY_AFTER_MAX))
}

fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    retry_after(value, std::time::SystemTime::now())
}

/// POSTs `envelope` to `url`.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    envelope: &Envelope,
) -> Attempt {
    let timestamp = jiff::Timestamp::now().as_second();
    let signature = key.sign(&envelope.id, timestamp, &envelope.body);
    let answer = http
        .post(url)
        .timeout(TIMEOUT)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/cloudevents+json",
        )
        .header("webhook-id", &envelope.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(envelope.body.clone())
        .send()
        .await;
    match answer {
        Ok(response) => classify(
            response.status(),
            retry_after_header(response.headers()),
            &envelope.id,
        ),
        Err(e) if e.is_timeout() => Attempt::Retry {
            after: None,
            error: "the sink did not answer in time".into(),
        },
        Err(_) => Attempt::Retry {
            after: None,
            error: "the sink could not be reached".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            ("99999999", Some(RETRY_AFTER_MAX)),
            (
                "Wed, 21 Oct 2015 07:28:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            // The obsolete forms HTTP still asks recipients to accept.
            (
                "Wednesday, 21-Oct-15 07:29:00 GMT",
                Some(Duration::from_secs(60)),
            ),
            ("Wed Oct 21 07:28:05 2015", Some(Duration::from_secs(5))),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(retry_after(value, now), expected, "{value:?}");
        }
    }

    #[test]
    fn answers_classify() {
        let cases = [
            (200, None, "delivered"),
            (204, None, "delivered"),
            (429, Some(Duration::from_secs(3)), "retry"),
            (503, None, "retry"),
            (408, None, "retry"),
            (400, None, "refused"),
            (404, None, "refused"),
            (410, None, "refused"),
        ];
        for (code, after, expected) in cases {
            let got = classify(StatusCode::from_u16(code).unwrap(), after, "e1");
            let kind = match &got {
                Attempt::Delivered { content } => {
                    assert_eq!(content, "e1");
                    "delivered"
                }
                Attempt::Retry { after: a, .. } => {
                    assert_eq!(*a, after);
                    "retry"
                }
                Attempt::Refused { .. } => "refused",
            };
            assert_eq!(kind, expected, "{code}");
        }
    }
}
