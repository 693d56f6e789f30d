//! The one task cache: tasks never change once created, so a task decoded
//! from the store (a costly step for TFHE tasks with a CRS) is kept for the
//! life of the process, and every caller shares one copy (and so one
//! release lock).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

/// See the module docs.
#[derive(Debug)]
pub struct TaskCache<K, V> {
    tasks: RwLock<HashMap<K, Arc<V>>>,
}

impl<K, V> Default for TaskCache<K, V> {
    fn default() -> Self {
        TaskCache {
            tasks: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V> TaskCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached task, if any.
    pub fn get(&self, id: &K) -> Option<Arc<V>> {
        // A poisoned lock only means a panic elsewhere while inserting; the
        // map itself is still consistent.
        self.tasks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Caches `task` unless one is cached already; returns the cached one.
    pub fn insert(&self, id: K, task: Arc<V>) -> Arc<V> {
        let mut tasks = self.tasks.write().unwrap_or_else(|e| e.into_inner());
        tasks.entry(id).or_insert(task).clone()
    }

    /// The cached task, or the one `load` makes (`Ok(None)`: no such task).
    pub async fn get_or_load<E, F, Fut>(&self, id: &K, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(task) = self.get(id) {
            return Ok(Some(task));
        }
        match load().await? {
            Some(task) => Ok(Some(self.insert(id.clone(), Arc::new(task)))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_once_and_shares_one_copy() {
        let cache: TaskCache<u8, String> = TaskCache::new();
        let a = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some("one".to_string())) })
            .await
            .unwrap()
            .unwrap();
        let b = cache
            .get_or_load::<(), _, _>(&1, || async { panic!("must not load again") })
            .await
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let none = cache
            .get_or_load(&2, || async { Ok::<_, ()>(None) })
            .await
            .unwrap();
        assert!(none.is_none());
    }
}
