//! Stable ordering helpers: reports list things in an order that does not
//! depend on file names, YAML key order or hash seeds.

/// The items sorted and deduplicated.
pub fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

/// The items sorted by a key (stable: equal keys keep their order).
pub fn sorted_by_key<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    key: impl FnMut(&T) -> K,
) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort_by_key(key);
    v
}

/// Joins displayable items with `sep`, or returns `empty` when there are none.
pub fn join_or<T: std::fmt::Display>(
    items: impl IntoIterator<Item = T>,
    sep: &str,
    empty: &str,
) -> String {
    let parts: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if parts.is_empty() {
        empty.to_string()
    } else {
        parts.join(sep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_dedups_and_join_or_handles_empty() {
        assert_eq!(sorted(["b", "a", "b"]), vec!["a", "b"]);
        assert_eq!(join_or(Vec::<String>::new(), ", ", "-"), "-");
        assert_eq!(join_or(["x", "y"], ", ", "-"), "x, y");
        let v = sorted_by_key([(2, 'a'), (1, 'b'), (2, 'c')], |p| p.0);
        assert_eq!(v, vec![(1, 'b'), (2, 'a'), (2, 'c')]);
    }
}
