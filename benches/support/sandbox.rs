//! The sandbox as its own process, for benchmarks that measure the engine's memory apart from
//! the sandbox's.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ghl_operator::ghl::budget::BudgetConfig;
use ghl_operator::ghl::{ConnectionSettings, GhlClient, GhlMetrics, StaticToken};

/// A running `ghl-operator sandbox`; killed when dropped.
pub struct Sandbox {
    child: Child,
    pub url: String,
    rate: (u32, Duration),
}

impl Sandbox {
    /// A client of the sandbox's `location`, its budget the sandbox's own rate limit.
    pub fn client(&self, location: &str) -> GhlClient {
        let mut settings = ConnectionSettings::new(&self.url, location);
        settings.budget = BudgetConfig {
            requests_per_window: self.rate.0,
            window: self.rate.1,
            ..BudgetConfig::default()
        };
        settings
            .connect(
                Arc::new(StaticToken::new("pit-sandbox-token")),
                Arc::new(GhlMetrics::default()),
            )
            .unwrap()
            .0
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the sandbox on a free port with `rate` requests per `window`, no daily limit to
/// speak of, and a search index that lags writes by 1 s as GHL's does.
pub fn start(rate: u32, window: Duration) -> Sandbox {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            &format!("{rate}/{}s", window.as_secs()),
            "--daily-limit",
            "100000000",
            "--search-lag",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sandbox starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in lines {});
    let url = first.trim().rsplit(' ').next().unwrap().to_owned();
    Sandbox {
        child,
        url,
        rate: (rate, window),
    }
}

/// This process's peak resident memory (VmHWM), in MiB.
pub fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
