//! Containers for the duplicate state that grow without moving what they hold.
//!
//! The state runs in the ordered stage, where every event waits for the one before it. A
//! `Vec`, `VecDeque` or hash map that doubles copies (or rehashes) everything at once: with
//! the standard ones, one upsert took 31 ms when the id map passed 917,504 listings and 39 ms
//! when the slots passed 2^20 (one thread, a quiet machine), and in Kafka mode every event of
//! the batch behind it waited as long. These grow by a chunk or a shard at a time instead, so
//! the same work is spread over many events.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::ops::{Index, IndexMut};

use compact_str::CompactString;
use rustc_hash::{FxBuildHasher, FxHashMap};

/// Entries per chunk of [`ChunkedVec`] and [`ChunkedQueue`]: small enough that allocating one
/// is cheap, large enough that the list of chunks stays in cache.
const CHUNK: usize = 4096;

/// A vector of fixed-size chunks: pushing never moves an element.
#[derive(Debug)]
pub(super) struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> ChunkedVec<T> {
    pub(super) fn push(&mut self, item: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(item);
            self.len += 1;
        }
    }

    /// Stores `item` in a freed place if `free` names one, else at the end; returns where.
    pub(super) fn put(&mut self, item: T, free: &mut Vec<u32>) -> u32 {
        match free.pop() {
            Some(index) => {
                self[index as usize] = item;
                index
            }
            None => {
                self.push(item);
                (self.len - 1) as u32
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, index: usize) -> &T {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    #[inline]
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index / CHUNK][index % CHUNK]
    }
}

/// A first-in first-out queue of fixed-size chunks: pushing never moves an element, and a
/// chunk is freed as soon as it has been read.
#[derive(Debug)]
pub(super) struct ChunkedQueue<T> {
    chunks: VecDeque<Vec<T>>,
    /// Position of the oldest element in the front chunk.
    head: usize,
    len: usize,
}

impl<T> Default for ChunkedQueue<T> {
    fn default() -> Self {
        ChunkedQueue {
            chunks: VecDeque::new(),
            head: 0,
            len: 0,
        }
    }
}

impl<T: Copy> ChunkedQueue<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push_back(&mut self, item: T) {
        if self.chunks.back().is_none_or(|last| last.len() == CHUNK) {
            self.chunks.push_back(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.back_mut() {
            last.push(item);
            self.len += 1;
        }
    }

    pub(super) fn pop_front(&mut self) -> Option<T> {
        // Every chunk but the last is full, so the front one runs out only at CHUNK, or
        // when it is also the last and the queue is empty.
        let item = *self.chunks.front()?.get(self.head)?;
        self.head += 1;
        self.len -= 1;
        if self.head == CHUNK {
            self.chunks.pop_front();
            self.head = 0;
        }
        Some(item)
    }
}

/// Shards of [`ShardedMap`]: at a million ids, one shard's rehash moves some 15,000 entries.
const SHARDS: usize = 64;

/// A map from ids to values in [`SHARDS`] hash maps, so that a rehash moves one shard's
/// entries, not all of them.
#[derive(Debug)]
pub(super) struct ShardedMap<V> {
    shards: Box<[FxHashMap<CompactString, V>]>,
    len: usize,
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            len: 0,
        }
    }
}

impl<V: Copy> ShardedMap<V> {
    #[inline]
    fn shard(&self, key: &str) -> usize {
        // The shard is taken from bits the maps inside do not use: they place an entry by
        // the low bits of the same hash and tag it with the top seven.
        let hash = FxBuildHasher.hash_one(key);
        (hash >> 32) as usize % SHARDS
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, key: &str) -> Option<V> {
        self.shards[self.shard(key)].get(key).copied()
    }

    pub(super) fn insert(&mut self, key: &str, value: V) {
        let shard = self.shard(key);
        if self.shards[shard]
            .insert(CompactString::from(key), value)
            .is_none()
        {
            self.len += 1;
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let shard = self.shard(key);
        let removed = self.shards[shard].remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn a_chunked_vec_indexes_across_chunks() {
        let mut v = ChunkedVec::default();
        for i in 0..3 * CHUNK + 5 {
            v.push(i);
        }
        assert_eq!(v.iter().count(), 3 * CHUNK + 5);
        assert_eq!(v[0], 0);
        assert_eq!(v[CHUNK - 1], CHUNK - 1);
        assert_eq!(v[CHUNK], CHUNK);
        assert_eq!(v[3 * CHUNK + 4], 3 * CHUNK + 4);
        v[CHUNK] = 7;
        assert_eq!(v[CHUNK], 7);
        let mut free = vec![5];
        assert_eq!(v.put(11, &mut free), 5);
        assert_eq!(v[5], 11);
        assert_eq!(v.put(12, &mut free), (3 * CHUNK + 5) as u32);
        assert_eq!(v[3 * CHUNK + 5], 12);
        assert!(free.is_empty());
        assert_eq!(v.iter().count(), 3 * CHUNK + 6);
        assert_eq!(v.iter().nth(CHUNK + 1), Some(&(CHUNK + 1)));
    }

    proptest! {
        /// Pushes (Some) and pops (None) in any order give what a `VecDeque` gives, across
        /// chunk boundaries and after the queue has run empty.
        #[test]
        fn a_chunked_queue_is_a_fifo(ops in prop::collection::vec(
            prop_oneof![3 => any::<u32>().prop_map(Some), 2 => Just(None)],
            0..(3 * CHUNK),
        )) {
            let mut queue = ChunkedQueue::default();
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Some(x) => {
                        queue.push_back(x);
                        model.push_back(x);
                    }
                    None => prop_assert_eq!(queue.pop_front(), model.pop_front()),
                }
                prop_assert_eq!(queue.len(), model.len());
            }
            while let Some(x) = model.pop_front() {
                prop_assert_eq!(queue.pop_front(), Some(x));
            }
            prop_assert_eq!(queue.pop_front(), None);
        }

        #[test]
        fn a_sharded_map_is_a_map(ops in prop::collection::vec(
            (0u16..300, prop::option::of(any::<u32>())),
            0..2000,
        )) {
            let mut map = ShardedMap::default();
            let mut model = HashMap::new();
            for (key, value) in ops {
                let key = format!("G{key:08}");
                match value {
                    Some(v) => {
                        map.insert(&key, v);
                        model.insert(key.clone(), v);
                    }
                    None => prop_assert_eq!(map.remove(&key), model.remove(&key)),
                }
                prop_assert_eq!(map.get(&key), model.get(&key).copied());
                prop_assert_eq!(map.len(), model.len());
            }
        }
    }
}
