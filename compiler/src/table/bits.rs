//! Dense bitsets over rule indexes. Chosen over sparse sets by measurement: with a few
//! thousand rules an AND of whole words is a handful of vector instructions, while sparse
//! intersections branch on every element.

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bits(Box<[u64]>);

impl Bits {
    pub(crate) fn empty(words: usize) -> Bits {
        Bits(vec![0; words].into_boxed_slice())
    }

    pub(crate) fn set(&mut self, index: u32) {
        if let Some(word) = self.0.get_mut((index / 64) as usize) {
            *word |= 1 << (index % 64);
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, index: u32) -> bool {
        self.0
            .get((index / 64) as usize)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    pub(crate) fn words(&self) -> &[u64] {
        &self.0
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len() * 8
    }
}

pub(crate) fn copy(target: &mut [u64], source: &[u64]) {
    target.copy_from_slice(source);
}

#[cfg(test)]
pub(crate) fn and(target: &mut [u64], other: &[u64]) {
    for (word, other) in target.iter_mut().zip(other) {
        *word &= *other;
    }
}

pub(crate) fn or(target: &mut [u64], other: &[u64]) {
    for (word, other) in target.iter_mut().zip(other) {
        *word |= *other;
    }
}

pub(crate) fn set_bit(target: &mut [u64], index: u32) {
    if let Some(word) = target.get_mut((index / 64) as usize) {
        *word |= 1 << (index % 64);
    }
}

/// Calls `visit` with every set index, in increasing order.
pub(crate) fn for_each(words: &[u64], mut visit: impl FnMut(u32)) {
    for (position, word) in words.iter().enumerate() {
        let mut remaining = *word;
        while remaining != 0 {
            let bit = remaining.trailing_zeros();
            visit(position as u32 * 64 + bit);
            remaining &= remaining - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_iterate_across_words() {
        let mut bits = Bits::empty(3);
        for index in [0, 63, 64, 130] {
            bits.set(index);
        }
        let mut seen = Vec::new();
        for_each(bits.words(), |index| seen.push(index));
        assert_eq!(seen, [0, 63, 64, 130]);
        assert!(bits.get(64) && !bits.get(65));
        let mut acc = vec![u64::MAX; 3];
        and(&mut acc, bits.words());
        assert_eq!(acc, bits.words());
    }
}

/// A bitset stored as its non-zero words only. Principal keys select few rules, and the
/// lowering numbers rules so that each key's rules sit in one or two words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SparseBits(Box<[(u32, u64)]>);

impl SparseBits {
    pub(crate) fn from_dense(bits: &Bits) -> SparseBits {
        SparseBits(
            bits.words()
                .iter()
                .enumerate()
                .filter(|(_, word)| **word != 0)
                .map(|(position, word)| (position as u32, *word))
                .collect(),
        )
    }

    pub(crate) fn entries(&self) -> &[(u32, u64)] {
        &self.0
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len() * 16
    }
}
