//! One shared copy of what repeats across tokens: domain, project and role
//! names and ids, method and role lists, catalogs, the shared part of
//! rendered header blocks. A cache of 300,000 tokens
//! of one project holds that project's name once, not 300,000 times.
//!
//! The pool is taken only where an identity is built (a cache miss) and where
//! its header block is first rendered (once per identity, on the first
//! request that forwards it), never on later hits. It keeps a value while some identity holds it: when it has
//! doubled since the last sweep, values nothing else holds any more are
//! dropped, so it is bounded by what the live identities share.

use std::{
    collections::HashSet,
    hash::Hash,
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use super::{Catalog, Names, SharedBlock};

/// Sweep no earlier than at this many pooled values.
const MIN_SWEEP: usize = 4096;

struct Set<T: ?Sized> {
    items: HashSet<Arc<T>>,
    sweep_at: usize,
}

impl<T: ?Sized + Eq + Hash> Set<T> {
    fn new() -> Self {
        Self {
            items: HashSet::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    fn get<Q>(&self, q: &Q) -> Option<Arc<T>>
    where
        Arc<T>: std::borrow::Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.items.get(q).cloned()
    }

    fn put(&mut self, v: Arc<T>) -> Arc<T> {
        if self.items.len() >= self.sweep_at {
            self.items.retain(|i| Arc::strong_count(i) > 1);
            self.sweep_at = (self.items.len() * 2).max(MIN_SWEEP);
        }
        self.items.insert(v.clone());
        v
    }
}

struct Pool {
    strs: Set<str>,
    lists: Set<[Arc<str>]>,
    catalogs: Set<Catalog>,
    blocks: Set<SharedBlock>,
}

static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(|| {
    Mutex::new(Pool {
        strs: Set::new(),
        lists: Set::new(),
        catalogs: Set::new(),
        blocks: Set::new(),
    })
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // The pool holds no invariant a panic could break half-way.
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn str_in(p: &mut Pool, s: &str) -> Arc<str> {
    match p.strs.get(s) {
        Some(v) => v,
        None => p.strs.put(Arc::from(s)),
    }
}

/// The shared copy of `s`.
pub fn str(s: &str) -> Arc<str> {
    str_in(&mut pool(), s)
}

/// The shared copy of an optional string.
pub fn opt(s: Option<&str>) -> Option<Arc<str>> {
    s.map(str)
}

/// The shared copy of a list of strings (each item shared too).
pub fn list<S: AsRef<str>>(items: &[S]) -> Names {
    if items.is_empty() {
        return Names::default();
    }
    let mut p = pool();
    let v: Vec<Arc<str>> = items.iter().map(|s| str_in(&mut p, s.as_ref())).collect();
    match p.lists.get(&v[..]) {
        Some(l) => l,
        None => p.lists.put(Arc::from(v)),
    }
}

/// The shared copy of a catalog.
pub fn catalog(c: Catalog) -> Arc<Catalog> {
    let mut p = pool();
    match p.catalogs.get(&c) {
        Some(v) => v,
        None => p.catalogs.put(Arc::new(c)),
    }
}

/// The shared copy of a rendered header block's shared part (one per scope,
/// roles and user domain, not one per token), found by its bytes; `values`
/// makes its header values only when the pool does not hold it yet.
pub fn block(
    bytes: bytes::Bytes,
    values: impl FnOnce(&bytes::Bytes) -> Box<[Option<http::HeaderValue>]>,
) -> Arc<SharedBlock> {
    // Blocks compare and hash by their bytes alone: the probe needs no values.
    let probe = SharedBlock {
        bytes,
        values: Box::default(),
    };
    let mut p = pool();
    match p.blocks.get(&probe) {
        Some(v) => v,
        None => {
            let values = values(&probe.bytes);
            p.blocks.put(Arc::new(SharedBlock {
                bytes: probe.bytes,
                values,
            }))
        }
    }
}
