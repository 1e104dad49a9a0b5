//! Which namespaces the operator watches: all of them (a cluster-wide install), or a list
//! (namespaced installs: one Role per namespace, nothing cluster-wide).
//!
//! The API has no "these namespaces" watch, so a list runs one watcher per namespace. Their
//! events feed one reflector store through [`Merge`], which makes them look like a single
//! watcher: one initial listing that completes when every namespace's has, and later a
//! re-list of one namespace (after a watch error) as applies plus deletes of what it no
//! longer lists — never a store reset that would drop the other namespaces.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::crd::kind::Object;

/// A namespaced kind the operator watches.
pub trait Watched: Object + Send + Sync + 'static {}

impl<K: Object + Send + Sync + 'static> Watched for K {}

/// The namespaces watched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs a ClusterRole).
    #[default]
    All,
    /// Only these (a Role in each is enough).
    Namespaces(Vec<String>),
}

impl Scope {
    /// `All` for an empty list; duplicates and empty names dropped.
    pub fn of(namespaces: &[String]) -> Self {
        let mut list: Vec<String> = Vec::new();
        for ns in namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
        {
            if !list.iter().any(|seen| seen == ns) {
                list.push(ns.to_owned());
            }
        }
        if list.is_empty() {
            Scope::All
        } else {
            Scope::Namespaces(list)
        }
    }

    /// For logs.
    pub fn describe(&self) -> String {
        match self {
            Scope::All => "(all)".into(),
            Scope::Namespaces(list) => list.join(","),
        }
    }

    /// The namespaces named (none for `All`).
    pub fn namespaces(&self) -> Vec<String> {
        match self {
            Scope::All => Vec::new(),
            Scope::Namespaces(list) => list.clone(),
        }
    }

    /// One API per watched namespace (one cluster-wide API for `All`).
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match self {
            Scope::All => vec![Api::all(client.clone())],
            Scope::Namespaces(list) => list
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }
}

/// The watch events of kind `K` in `scope`, as one watcher's; `store` is the reflector store
/// they feed (read to find what a re-listed namespace no longer has).
pub fn objects<K: Watched>(
    client: &Client,
    scope: &Scope,
    store: Store<K>,
) -> BoxStream<'static, Result<Event<K>, watcher::Error>> {
    let mut apis = scope.apis::<K>(client);
    if apis.len() == 1 {
        let api = apis.remove(0);
        return watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
    }
    let namespaces: Vec<String> = match scope {
        Scope::Namespaces(list) => list.clone(),
        Scope::All => Vec::new(),
    };
    let sources = apis.into_iter().enumerate().map(|(i, api)| {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut merge = Merge::new(namespaces.len());
    stream::select_all(sources)
        .flat_map(move |(source, event)| {
            let out: Vec<Result<Event<K>, watcher::Error>> = match event {
                Err(error) => vec![Err(error)],
                Ok(event) => {
                    let namespace = namespaces[source].clone();
                    let listed = |ns: &str| -> Vec<K> {
                        store
                            .state()
                            .iter()
                            .filter(|o| o.namespace().as_deref() == Some(ns))
                            .map(|o| o.as_ref().clone())
                            .collect()
                    };
                    merge
                        .on(source, &namespace, event, listed)
                        .into_iter()
                        .map(Ok)
                        .collect()
                }
            };
            stream::iter(out)
        })
        .boxed()
}

/// Metadata-only watch of kind `K` in `scope`: every object touched.
pub fn metadata<K: Watched>(
    client: &Client,
    scope: &Scope,
) -> BoxStream<'static, Result<PartialObjectMeta<K>, watcher::Error>> {
    let streams = scope
        .apis::<PartialObjectMeta<K>>(client)
        .into_iter()
        .map(|api| {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .boxed()
        });
    stream::select_all(streams).boxed()
}

/// Folds the events of several watchers (one per namespace) into those of one watcher.
#[derive(Debug)]
pub struct Merge<K: Resource<DynamicType = ()>> {
    sources: usize,
    /// The combined `Init` was sent.
    started: bool,
    /// Sources whose first listing is complete.
    listed: HashSet<usize>,
    /// Deletes seen before every first listing completed (sent after).
    held: Vec<K>,
    /// Sources re-listing after the first listing: what they listed so far.
    relisting: HashMap<usize, HashSet<ObjectRef<K>>>,
}

impl<K> Merge<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    pub fn new(sources: usize) -> Self {
        Self {
            sources,
            started: false,
            listed: HashSet::new(),
            held: Vec::new(),
            relisting: HashMap::new(),
        }
    }

    fn initial(&self) -> bool {
        self.listed.len() < self.sources
    }

    /// The events to pass on for `event` from `source` (watching `namespace`); `current`
    /// lists what the store holds in a namespace. Pure but for `current`.
    pub fn on(
        &mut self,
        source: usize,
        namespace: &str,
        event: Event<K>,
        current: impl Fn(&str) -> Vec<K>,
    ) -> Vec<Event<K>> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(Event::Init);
        }
        if self.initial() {
            match event {
                Event::Init => {}
                Event::InitApply(obj) | Event::Apply(obj) => out.push(Event::InitApply(obj)),
                Event::Delete(obj) => self.held.push(obj),
                Event::InitDone => {
                    self.listed.insert(source);
                    if !self.initial() {
                        out.push(Event::InitDone);
                        out.extend(self.held.drain(..).map(Event::Delete));
                    }
                }
            }
            return out;
        }
        match event {
            Event::Apply(obj) => out.push(Event::Apply(obj)),
            Event::Delete(obj) => out.push(Event::Delete(obj)),
            Event::Init => {
                self.relisting.insert(source, HashSet::new());
            }
            Event::InitApply(obj) => {
                if let Some(seen) = self.relisting.get_mut(&source) {
                    seen.insert(ObjectRef::from_obj(&obj));
                }
                out.push(Event::Apply(obj));
            }
            Event::InitDone => {
                let seen = self.relisting.remove(&source).unwrap_or_default();
                out.extend(
                    current(namespace)
                        .into_iter()
                        .filter(|obj| !seen.contains(&ObjectRef::from_obj(obj)))
                        .map(Event::Delete),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn names(events: &[Event<ConfigMap>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Init => "Init".into(),
                Event::InitDone => "InitDone".into(),
                Event::InitApply(o) => format!("InitApply {}", o.name_any()),
                Event::Apply(o) => format!("Apply {}", o.name_any()),
                Event::Delete(o) => format!("Delete {}", o.name_any()),
            })
            .collect()
    }

    #[test]
    fn scopes_from_flags() {
        assert_eq!(Scope::of(&[]), Scope::All);
        assert_eq!(Scope::of(&[" ".into()]), Scope::All);
        assert_eq!(
            Scope::of(&["a".into(), "b".into(), "a".into()]),
            Scope::Namespaces(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn the_first_listing_completes_when_every_namespace_has_listed() {
        let mut merge = Merge::<ConfigMap>::new(2);
        let none = |_: &str| Vec::new();
        let mut all = Vec::new();
        all.extend(merge.on(0, "a", Event::Init, none));
        all.extend(merge.on(0, "a", Event::InitApply(cm("a", "a1")), none));
        all.extend(merge.on(1, "b", Event::Init, none));
        all.extend(merge.on(0, "a", Event::InitDone, none));
        // a is listed, b is not: a's changes still go to the buffer; deletes wait.
        all.extend(merge.on(0, "a", Event::Apply(cm("a", "a2")), none));
        all.extend(merge.on(0, "a", Event::Delete(cm("a", "a1")), none));
        all.extend(merge.on(1, "b", Event::InitApply(cm("b", "b1")), none));
        all.extend(merge.on(1, "b", Event::InitDone, none));
        all.extend(merge.on(1, "b", Event::Apply(cm("b", "b2")), none));
        assert_eq!(
            names(&all),
            [
                "Init",
                "InitApply a1",
                "InitApply a2",
                "InitApply b1",
                "InitDone",
                "Delete a1",
                "Apply b2"
            ]
        );
    }

    #[test]
    fn a_relisted_namespace_drops_only_its_own_vanished_objects() {
        let mut merge = Merge::<ConfigMap>::new(2);
        let none = |_: &str| Vec::new();
        for (source, ns) in [(0, "a"), (1, "b")] {
            merge.on(source, ns, Event::Init, none);
            merge.on(source, ns, Event::InitDone, none);
        }
        // The store holds a1, a2 (and b's objects); a's watch restarts and lists only a2.
        let store = |ns: &str| {
            if ns == "a" {
                vec![cm("a", "a1"), cm("a", "a2")]
            } else {
                vec![cm("b", "b1")]
            }
        };
        let mut out = Vec::new();
        out.extend(merge.on(0, "a", Event::Init, store));
        out.extend(merge.on(0, "a", Event::InitApply(cm("a", "a2")), store));
        out.extend(merge.on(1, "b", Event::Apply(cm("b", "b1")), store));
        out.extend(merge.on(0, "a", Event::InitDone, store));
        assert_eq!(names(&out), ["Apply a2", "Apply b1", "Delete a1"]);
    }
}
