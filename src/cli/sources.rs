//! `--allowed-source-url`: the one flag the operator (`run`) and the CLI (`plan`, `apply`)
//! share for `contactsFrom[].http`.

use anyhow::anyhow;

use crate::egress::AllowList;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SourceArgs {
    /// A URL policies may read contact records from (`contactsFrom[].http.url` must have its
    /// scheme, host and port, and start with its path); repeat for several. Without any,
    /// nothing is fetched.
    #[arg(
        long = "allowed-source-url",
        env = "GHL_ALLOWED_SOURCE_URLS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub allowed_source_urls: Vec<String>,
}

impl SourceArgs {
    /// The URLs allowed, or why one of them is not a URL that can be allowed.
    pub fn allow_list(&self) -> anyhow::Result<AllowList> {
        AllowList::parse(&self.allowed_source_urls)
            .map_err(|e| anyhow!("--allowed-source-url: {e}"))
    }
}
