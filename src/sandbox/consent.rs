//! GHL's consent screen, emulated: `GET /oauth/chooselocation` with GHL's query
//! (`response_type=code`, `client_id`, `redirect_uri`, `scope`, `state`, optionally
//! `user_type=Company`) answers a page listing the sandbox's locations (or its agency), each a
//! link that sends the browser to `redirect_uri?code=…&state=…` with a code bound to that
//! choice. The sandbox-only `&locationId=ID` skips the page and redirects at once (tests, the
//! demo). Pure: the caller mints the code.

use std::collections::BTreeMap;

use url::Url;

/// Where the screen is served.
pub const PATH: &str = "/oauth/chooselocation";

/// What the consent screen does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Show the choices: `(label, link)` each.
    Choose(Vec<(String, String)>),
    /// The person chose: mint a code for this location (the agency for a Company grant), and
    /// send the browser back.
    Chosen {
        location: String,
        company: bool,
        scopes: Option<Vec<String>>,
    },
    /// A request GHL would refuse (400), and why.
    Refused(String),
}

/// What the request asks, checked. `client_id`: the sandbox's app.
pub fn decide(
    query: &BTreeMap<String, String>,
    client_id: &str,
    locations: &[String],
    company: &str,
) -> Screen {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    if get("response_type") != "code" {
        return Screen::Refused("response_type must be code".into());
    }
    if get("client_id") != client_id {
        return Screen::Refused("unknown client_id".into());
    }
    match Url::parse(get("redirect_uri")) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => return Screen::Refused("redirect_uri must be an http(s) URL".into()),
    }
    let company_grant = get("user_type") == "Company";
    let scopes = query
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    if let Some(chosen) = query.get("locationId") {
        let known = if company_grant {
            chosen == company
        } else {
            locations.contains(chosen)
        };
        if !known {
            return Screen::Refused(format!("no location {chosen} here"));
        }
        return Screen::Chosen {
            location: chosen.clone(),
            company: company_grant,
            scopes,
        };
    }
    // The same screen, with the choice made.
    let link = |id: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter())
            .append_pair("locationId", id)
            .finish();
        format!("{PATH}?{query}")
    };
    let choices = if company_grant {
        vec![(format!("Agency {company}"), link(company))]
    } else {
        locations
            .iter()
            .map(|l| (format!("Sub-account {l}"), link(l)))
            .collect()
    };
    Screen::Choose(choices)
}

/// Where the browser goes once a code is minted: the redirect URI with `code` and `state`.
pub fn redirect(query: &BTreeMap<String, String>, code: &str) -> String {
    let mut url = Url::parse(query.get("redirect_uri").map_or("", String::as_str))
        .unwrap_or_else(|_| Url::parse("http://invalid/").unwrap());
    url.query_pairs_mut().append_pair("code", code);
    if let Some(state) = query.get("state") {
        url.query_pairs_mut().append_pair("state", state);
    }
    url.to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page listing the choices.
pub fn page(choices: &[(String, String)]) -> String {
    let items: String = choices
        .iter()
        .map(|(label, link)| {
            format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(link),
                escape(label)
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Choose an account · GHL sandbox</title></head>\
         <body><h1>Choose an account</h1><p>The sandbox stands in for GHL's consent screen.</p><ul>{items}</ul></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("response_type", "code"),
        ("client_id", "app-1"),
        ("redirect_uri", "https://op.example/oauth/callback"),
        ("scope", "contacts.readonly contacts.write"),
        ("state", "s-1"),
    ];

    #[test]
    fn the_screen_lists_choices_redirects_a_choice_and_refuses_bad_requests() {
        let locations = vec!["locA".to_owned(), "locB".to_owned()];
        let decide = |q: &BTreeMap<String, String>| decide(q, "app-1", &locations, "co-1");
        let Screen::Choose(choices) = decide(&query(BASE)) else {
            panic!("a page");
        };
        assert_eq!(choices.len(), 2);
        assert!(choices[1].1.contains("locationId=locB") && choices[1].1.contains("state=s-1"));
        let html = page(&choices);
        assert!(
            html.contains("Sub-account locA") && html.contains("&amp;"),
            "{html}"
        );

        let mut chosen = query(BASE);
        chosen.insert("locationId".into(), "locB".into());
        assert_eq!(
            decide(&chosen),
            Screen::Chosen {
                location: "locB".into(),
                company: false,
                scopes: Some(vec!["contacts.readonly".into(), "contacts.write".into()]),
            }
        );
        let back = redirect(&chosen, "c0de");
        assert_eq!(
            back,
            "https://op.example/oauth/callback?code=c0de&state=s-1"
        );

        let mut agency = query(BASE);
        agency.insert("user_type".into(), "Company".into());
        let Screen::Choose(choices) = decide(&agency) else {
            panic!("a page");
        };
        assert_eq!(choices.len(), 1);

        for (key, value) in [
            ("response_type", "token"),
            ("client_id", "someone-else"),
            ("redirect_uri", "javascript:alert(1)"),
            ("locationId", "nowhere"),
        ] {
            let mut bad = query(BASE);
            bad.insert(key.into(), value.into());
            assert!(matches!(decide(&bad), Screen::Refused(_)), "{key}={value}");
        }
    }
}
