//! An agency grant's installed locations: `GET /oauth/installedLocations` with the agency
//! token, at each connection check and after an install or uninstall webhook, summarised in
//! the connection's status — which installed locations no connection in its namespace serves
//! yet. Nothing is created from it. Only ids are read: a location's name and address may be a
//! person's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use secrecy::SecretString;

use crate::controller::registry::clients::ConnectionKey;
use crate::crd::connection::InstalledLocationsStatus;
use crate::ghl::GhlError;
use crate::ghl::oauth::OAuthClient;

/// Locations asked for per page (GHL's default is 20).
const PAGE: u64 = 100;
/// Pages read at most: an agency with more installed locations is reported truncated.
const MAX_PAGES: u64 = 10;
/// Available locations listed in status at most.
const LISTED: usize = 100;

/// When each agency connection last listed its installed locations.
#[derive(Default)]
pub struct Listings {
    last: Mutex<HashMap<ConnectionKey, Instant>>,
}

impl Listings {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionKey, Instant>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` should list again (never listed in this process, or `every` ago).
    pub fn due(&self, key: &ConnectionKey, every: Duration) -> bool {
        self.map().get(key).is_none_or(|at| at.elapsed() >= every)
    }

    pub fn listed(&self, key: &ConnectionKey) {
        self.map().insert(key.clone(), Instant::now());
    }

    /// List again at the next reconcile (an install or uninstall), or forget a connection
    /// that is gone.
    pub fn forget(&self, key: &ConnectionKey) {
        self.map().remove(key);
    }
}

/// The app's id: its client id up to the first `-` (how GHL's SDK reads it).
pub fn app_id(client_id: &str) -> &str {
    client_id.split('-').next().unwrap_or_default()
}

/// What GHL says is installed: location ids read, and its total count.
#[derive(Debug, Default, PartialEq)]
pub struct Installed {
    pub ids: Vec<String>,
    pub count: u64,
    /// Every page GHL answered named its `count`.
    pub counted: bool,
}

impl Installed {
    /// Whether this is GHL's whole list: every page counted, and as many distinct ids read as
    /// counted (a page missing, or a location that moved between pages, makes it partial).
    /// Only a whole list may say that a location uninstalled the app.
    pub fn complete(&self) -> bool {
        let distinct: BTreeSet<&str> = self.ids.iter().map(String::as_str).collect();
        self.counted && distinct.len() as u64 == self.count
    }
}

/// Reads the installed locations, a page at a time, up to [`MAX_PAGES`].
pub async fn list(
    oauth: &OAuthClient,
    agency_token: &SecretString,
    company_id: &str,
    app_id: &str,
) -> Result<Installed, GhlError> {
    let mut installed = Installed {
        counted: true,
        ..Installed::default()
    };
    for page in 0..MAX_PAGES {
        let answer = oauth
            .installed_locations(agency_token, company_id, app_id, page * PAGE, PAGE)
            .await?;
        installed.counted &= answer.count.is_some();
        installed.count = answer.count.unwrap_or(0);
        let got = answer.locations.len() as u64;
        installed.ids.extend(
            answer
                .locations
                .into_iter()
                .filter(|l| l.is_installed != Some(false))
                .map(|l| l.id),
        );
        if got < PAGE || (page + 1) * PAGE >= installed.count {
            break;
        }
    }
    Ok(installed)
}

/// Whether `id` looks like a location id (GHL's are 20 alphanumerics); anything else is not
/// repeated into status.
fn plausible(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The status for what GHL listed, given the locations the namespace's connections serve.
pub fn status(
    installed: &Installed,
    served: &BTreeSet<String>,
    now: Timestamp,
) -> InstalledLocationsStatus {
    let ids: BTreeSet<&str> = installed
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| plausible(id))
        .collect();
    let available: Vec<String> = ids
        .iter()
        .filter(|id| !served.contains(**id))
        .map(|id| (*id).to_owned())
        .collect();
    let read = ids.len() as u64;
    InstalledLocationsStatus {
        checked_at: Some(Time(now)),
        count: installed.count.max(read),
        served: read - available.len() as u64,
        truncated: available.len() > LISTED || installed.count > read,
        available: available.into_iter().take(LISTED).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(ids: &[&str], count: u64) -> Installed {
        Installed {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            count,
            counted: true,
        }
    }

    #[test]
    fn only_a_counted_list_with_every_id_is_complete() {
        assert!(installed(&["a", "b"], 2).complete());
        assert!(installed(&[], 0).complete());
        assert!(!installed(&["a"], 2).complete(), "a page missing");
        assert!(!installed(&["a", "a"], 2).complete(), "an id read twice");
        let mut uncounted = installed(&[], 0);
        uncounted.counted = false;
        assert!(!uncounted.complete(), "GHL said no count: {{}} or null");
    }

    #[test]
    fn app_ids_are_the_client_id_up_to_the_first_dash() {
        assert_eq!(app_id("6489abc-lx2k9"), "6489abc");
        assert_eq!(app_id("plain"), "plain");
    }

    #[test]
    fn status_lists_what_no_connection_serves() {
        let now = Timestamp::UNIX_EPOCH;
        let served: BTreeSet<String> = ["locA".to_owned()].into();
        let many: Vec<String> = (0..150).map(|i| format!("loc{i:03}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        // (installed, count, expected count, served, available, truncated)
        let cases: [(Installed, u64, u64, Vec<&str>, bool); 4] = [
            (
                installed(&["locB", "locA", "locC"], 3),
                3,
                1,
                vec!["locB", "locC"],
                false,
            ),
            (installed(&[], 0), 0, 0, vec![], false),
            // GHL counts more than were read: truncated.
            (installed(&["locA"], 1500), 1500, 1, vec![], true),
            // Hostile ids are not repeated; duplicates count once.
            (
                installed(&["locA", "locA", "../../etc", &"x".repeat(65)], 2),
                2,
                1,
                vec![],
                true,
            ),
        ];
        for (listed, count, served_n, available, truncated) in cases {
            let status = status(&listed, &served, now);
            assert_eq!(status.count, count, "{listed:?}");
            assert_eq!(status.served, served_n, "{listed:?}");
            assert_eq!(status.available, available, "{listed:?}");
            assert_eq!(status.truncated, truncated, "{listed:?}");
        }
        let status = status(&installed(&many, 150), &served, now);
        assert_eq!((status.available.len(), status.truncated), (100, true));
    }

    #[test]
    fn listings_are_due_once_per_interval_or_after_an_install() {
        let listings = Listings::default();
        let key = ("crm".to_owned(), "agency".to_owned());
        let hour = Duration::from_secs(3600);
        assert!(listings.due(&key, hour));
        listings.listed(&key);
        assert!(!listings.due(&key, hour));
        assert!(listings.due(&key, Duration::ZERO));
        listings.forget(&key);
        assert!(listings.due(&key, hour));
    }
}
