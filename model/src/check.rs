//! Checks that look for a counterexample: each guard off, under bounds
//! where what it prevents can happen.

use stateright::{Checker, HasDiscoveries, Model};

use crate::config::{Config, Guard, Guards, Purchase};
use crate::model::{Action, Protocol};
use crate::state::State;

/// A property the checker found violated, and the shortest path there.
pub struct Found {
    pub property: &'static str,
    pub path: Vec<(State, Option<Action>)>,
    pub protocol: Protocol,
}

impl Found {
    /// The path as a story ([`crate::trace::tell`]).
    pub fn trace(&self) -> String {
        crate::trace::tell(&self.protocol, &self.path)
    }

    pub fn steps(&self) -> usize {
        self.path.len() - 1
    }

    pub fn last(&self) -> &State {
        &self.path[self.path.len() - 1].0
    }

    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        self.path.iter().filter_map(|(_, action)| *action)
    }
}

/// The first violation breadth-first search meets under `config`.
pub fn counterexample(config: Config) -> Option<Found> {
    let checker = Protocol::new(config)
        .checker()
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let properties = checker.model().properties();
    let (property, path) = properties
        .iter()
        .find_map(|p| checker.discovery(p.name).map(|path| (p.name, path)))?;
    Some(Found {
        property,
        path: path.into_vec(),
        protocol: Protocol::new(checker.model().config.clone()),
    })
}

/// The bounds under which the check without `guard` must find what the
/// guard prevents: CI's, with that guard off.
pub fn counterexample_config(guard: Guard) -> Config {
    let ci = Config::ci();
    let purchases = match guard {
        // A stale holder's release frees the key of the request that took
        // it over: a third request is needed to take it again, and a
        // double submit sends it.
        Guard::HolderCheck => vec![Purchase {
            keyed: true,
            declined: false,
            clients: 2,
        }],
        _ => ci.purchases.clone(),
    };
    Config {
        purchases,
        guards: Guards::all().without(guard),
        ..ci
    }
}
