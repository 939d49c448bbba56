//! Names (principal keys, DAG and host ids) to their index in the table. Deciding an
//! unprepared request looks up four or five names; with a map of `String`s each probe
//! reads a separately allocated key, usually a cache miss. Here the keys sit in one
//! buffer and every slot keeps its key's full hash, so a probe reads one slot and, when the
//! hashes agree, one run of the buffer.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    hash: u64,
    start: u32,
    len: u32,
    /// The name's index, plus one; zero marks an empty slot.
    value: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NameIndex {
    slots: Vec<Slot>,
    text: String,
    len: usize,
}

fn hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

impl NameIndex {
    /// The first slot to probe: the hash's high bits after a multiply, as Fx hashes of
    /// names that differ only in a last digit agree in their low bits.
    fn home(&self, hash: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }
}

impl NameIndex {
    /// Indexes `names`; a repeated name keeps its first index.
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = (&'a str, u32)>) -> NameIndex {
        let names: Vec<(&str, u32)> = names.into_iter().collect();
        // At most half full, so probe runs stay short.
        let capacity = (names.len() * 2).next_power_of_two().max(2);
        let mut index = NameIndex {
            slots: vec![Slot::default(); capacity],
            text: String::with_capacity(names.iter().map(|(name, _)| name.len()).sum()),
            len: 0,
        };
        for (name, value) in names {
            index.insert(name, value);
        }
        index
    }

    fn insert(&mut self, name: &str, value: u32) {
        if self.get(name).is_some() {
            return;
        }
        let hash = hash(name);
        let mask = self.slots.len() - 1;
        let mut position = self.home(hash);
        while self.slots.get(position).is_some_and(|slot| slot.value != 0) {
            position = (position + 1) & mask;
        }
        let start = self.text.len() as u32;
        self.text.push_str(name);
        if let Some(slot) = self.slots.get_mut(position) {
            *slot = Slot {
                hash,
                start,
                len: name.len() as u32,
                value: value.saturating_add(1),
            };
            self.len += 1;
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let hash = hash(name);
        let mask = self.slots.len() - 1;
        let mut position = self.home(hash);
        loop {
            let slot = self.slots.get(position)?;
            if slot.value == 0 {
                return None;
            }
            if slot.hash == hash
                && self
                    .text
                    .get(slot.start as usize..(slot.start + slot.len) as usize)
                    == Some(name)
            {
                return Some(slot.value - 1);
            }
            position = (position + 1) & mask;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_name_and_nothing_else() {
        let names: Vec<String> = (0..500).map(|index| format!("etl_{index}")).collect();
        let index = NameIndex::new(
            names
                .iter()
                .enumerate()
                .map(|(position, name)| (name.as_str(), position as u32)),
        );
        for (position, name) in names.iter().enumerate() {
            assert_eq!(index.get(name), Some(position as u32));
        }
        assert_eq!(index.get("etl_500"), None);
        assert_eq!(index.get(""), None);
        assert_eq!(index.get("etl_1 "), None);
    }

    #[test]
    fn empty_and_repeated_names() {
        assert_eq!(NameIndex::new([]).get("x"), None);
        let index = NameIndex::new([("a", 3), ("", 4), ("a", 9)]);
        assert_eq!(index.get("a"), Some(3));
        assert_eq!(index.get(""), Some(4));
        assert!(!index.is_empty());
    }
}
