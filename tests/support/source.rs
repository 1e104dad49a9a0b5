//! servis-ai's export endpoint, as a source for `contactsFrom[].http`: the sandbox's stand-in
//! ([`ghl_operator::sandbox::export::ExportServer`]), started on a free port.

use ghl_operator::sandbox::export::ExportServer;

pub type Source = ExportServer;

/// Serves `document` under `/export/` and `/private/` on 127.0.0.1.
pub async fn start(document: &str) -> Source {
    ExportServer::start(document)
        .await
        .expect("bind the export endpoint")
}
