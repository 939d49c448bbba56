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
#[inline]
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

/// Many sparse bitsets stored as their non-zero words, one after another: a principal
/// key selects few rules, and the lowering numbers rules so that each key's rules sit in
/// a word or two. One flat array keeps a decision's reads to two short runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WordLists {
    /// `starts[list]..starts[list + 1]` indexes `entries`.
    starts: Vec<u32>,
    /// (word position, word) pairs.
    entries: Vec<(u32, u64)>,
}

impl WordLists {
    /// Appends a list of the given (position, word) pairs, leaving out zero words.
    pub(crate) fn push(&mut self, words: impl IntoIterator<Item = (u32, u64)>) {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        self.entries
            .extend(words.into_iter().filter(|(_, word)| *word != 0));
        self.starts.push(self.entries.len() as u32);
    }

    pub(crate) fn get(&self, list: usize) -> &[(u32, u64)] {
        let start = self.starts.get(list).copied().unwrap_or(0) as usize;
        let end = self.starts.get(list + 1).copied().unwrap_or(0) as usize;
        self.entries.get(start..end).unwrap_or_default()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.starts.len() * 4 + self.entries.len() * 16
    }
}

/// Equal-length bitsets stored as the rows of one matrix, so reading a row is one offset
/// away from the table instead of a pointer away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BitMatrix {
    words: usize,
    cells: Vec<u64>,
}

impl BitMatrix {
    pub(crate) fn new(rows: usize, words: usize) -> BitMatrix {
        BitMatrix {
            words,
            cells: vec![0; rows * words],
        }
    }

    pub(crate) fn row(&self, row: usize) -> Option<&[u64]> {
        self.cells.get(row * self.words..(row + 1) * self.words)
    }

    pub(crate) fn set(&mut self, row: usize, index: u32) {
        if let Some(cells) = self.cells.get_mut(row * self.words..(row + 1) * self.words) {
            set_bit(cells, index);
        }
    }

    /// Sets `index` in every row.
    pub(crate) fn set_all(&mut self, index: u32) {
        for row in self.cells.chunks_mut(self.words.max(1)) {
            set_bit(row, index);
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.cells.len() * 8
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn word_lists_keep_only_non_zero_words_per_list() {
        let mut lists = WordLists::default();
        lists.push([(0, 0), (1, 5), (2, 0), (3, 1 << 63)]);
        lists.push([(4, 0)]);
        lists.push([(0, 7)]);
        assert_eq!(lists.get(0), &[(1, 5), (3, 1 << 63)]);
        assert!(lists.get(1).is_empty());
        assert_eq!(lists.get(2), &[(0, 7)]);
        assert!(lists.get(3).is_empty());
    }

    #[test]
    fn matrix_rows_are_independent() {
        let mut matrix = BitMatrix::new(3, 2);
        matrix.set(1, 70);
        matrix.set_all(0);
        assert_eq!(matrix.row(0), Some(&[1, 0][..]));
        assert_eq!(matrix.row(1), Some(&[1, 1 << 6][..]));
        assert_eq!(matrix.row(3), None);
    }
}
