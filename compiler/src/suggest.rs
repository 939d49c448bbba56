//! "Did you mean …?" by edit distance.

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = word.chars().count().div_ceil(3);
    let limit = limit.max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != word)
        .map(|candidate| {
            (
                distance(&word.to_lowercase(), &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by(|left, right| left.0.cmp(&right.0).then_with(|| left.1.cmp(right.1)))
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
/// `a`, `a` or `b`, `a`, `b` or `c`: names in backticks joined for a message.
pub fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|name| format!("`{name}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

pub fn distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    let mut current = vec![0; right.len() + 1];
    for (row, left_char) in left.chars().enumerate() {
        if let Some(first) = current.first_mut() {
            *first = row + 1;
        }
        for (column, right_char) in right.iter().enumerate() {
            let substitution =
                previous.get(column).copied().unwrap_or(0) + usize::from(left_char != *right_char);
            let deletion = previous.get(column + 1).copied().unwrap_or(0) + 1;
            let insertion = current.get(column).copied().unwrap_or(0) + 1;
            if let Some(cell) = current.get_mut(column + 1) {
                *cell = substitution.min(deletion).min(insertion);
            }
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_near_misses_only() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("enviroment", ["env", "environment", "owner"]),
            Some("environment")
        );
        assert_eq!(closest("prdo", ["dev", "staging", "prod"]), Some("prod"));
        assert_eq!(closest("xyz", ["dev", "staging", "prod"]), None);
    }
}
