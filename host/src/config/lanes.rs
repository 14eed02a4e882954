//! `--lanes NAME:WEIGHT,...`: priority lanes, listed highest first, and the one rule that splits
//! a run's producers, rate and message count across them.
//!
//! The rule ([`split`]): a total is shared in proportion to the weights, by largest remainder
//! (a tie goes to the higher lane), and then every lane gets at least 1, taken from the lane
//! holding most (a tie takes from the lower lane). A total smaller than the number of lanes
//! cannot be split.

/// The most lanes a run may declare.
pub const MAX_LANES: usize = 16;
/// The largest weight.
pub const MAX_WEIGHT: u64 = 1_000_000;

/// One declared lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    pub name: String,
    pub weight: u64,
}

/// Parses `high:1,low:9`; the error is the reason, for the caller to prefix.
pub fn parse(text: &str) -> Result<Vec<Lane>, String> {
    if text.trim().is_empty() {
        return Err("names no lane: give NAME:WEIGHT,... (e.g. high:1,low:9)".into());
    }
    let mut lanes: Vec<Lane> = Vec::new();
    for item in text.split(',') {
        let Some((name, weight)) = item.split_once(':') else {
            return Err(format!("`{item}` is not NAME:WEIGHT (e.g. high:1,low:9)"));
        };
        check_name(name).map_err(|why| {
            if name.is_empty() {
                format!("{why} (NAME:WEIGHT)")
            } else {
                why
            }
        })?;
        let weight = weight
            .parse::<u64>()
            .ok()
            .filter(|w| (1..=MAX_WEIGHT).contains(w))
            .ok_or_else(|| {
                format!(
                    "lane `{name}`: weight `{weight}` is not a whole number from 1 to {MAX_WEIGHT}"
                )
            })?;
        if lanes.iter().any(|l| l.name == name) {
            return Err(format!("lane `{name}` is declared twice"));
        }
        lanes.push(Lane {
            name: name.to_string(),
            weight,
        });
    }
    if lanes.len() > MAX_LANES {
        return Err(format!("{} lanes: at most {MAX_LANES}", lanes.len()));
    }
    Ok(lanes)
}

/// A lane name: 1 to 32 of `A-Z a-z 0-9 _ -` (it becomes a JSON key and a metrics label).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() {
        return Err("a lane needs a name".into());
    }
    if name.len() > 32 || !name.chars().all(ok) {
        return Err(format!(
            "`{name}` is not a usable lane name: 1 to 32 letters, digits, `_` or `-`"
        ));
    }
    Ok(())
}

/// `total` shared by `weights` (see the module docs); `None` when `total` is smaller than the
/// number of lanes.
pub fn split(total: u64, weights: &[u64]) -> Option<Vec<u64>> {
    if weights.is_empty() || total < weights.len() as u64 {
        return None;
    }
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let exact: Vec<u128> = weights
        .iter()
        .map(|&w| u128::from(total) * u128::from(w))
        .collect();
    let mut shares: Vec<u64> = exact.iter().map(|e| (e / sum) as u64).collect();
    let mut left = total - shares.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; the sort is stable, so a tie keeps the higher lane first.
    order.sort_by_key(|&i| std::cmp::Reverse(exact[i] % sum));
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    while let Some(empty) = shares.iter().position(|&s| s == 0) {
        let richest = (0..shares.len())
            .rev()
            .max_by_key(|&i| shares[i])
            .expect("at least one lane");
        shares[richest] -= 1;
        shares[empty] += 1;
    }
    Some(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_parse_in_priority_order() {
        assert_eq!(
            parse("high:1,low:9"),
            Ok(vec![
                Lane {
                    name: "high".into(),
                    weight: 1
                },
                Lane {
                    name: "low".into(),
                    weight: 9
                },
            ])
        );
    }

    #[test]
    fn bad_lane_lists_say_what_is_wrong() {
        for (text, needle) in [
            ("", "names no lane"),
            ("high", "is not NAME:WEIGHT"),
            ("high:1,", "is not NAME:WEIGHT"),
            (":1", "needs a name"),
            ("high:0", "weight `0`"),
            ("high:x", "weight `x`"),
            ("high:1,high:2", "declared twice"),
            ("a b:1", "not a usable lane name"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let many: Vec<String> = (0..=MAX_LANES).map(|i| format!("l{i}:1")).collect();
        assert!(parse(&many.join(",")).unwrap_err().contains("at most"));
    }

    #[test]
    fn a_split_follows_the_weights_adds_up_and_gives_every_lane_one() {
        assert_eq!(split(10, &[1, 9]), Some(vec![1, 9]));
        assert_eq!(split(3000, &[1, 9]), Some(vec![300, 2700]));
        assert_eq!(split(2, &[1, 9]), Some(vec![1, 1]));
        assert_eq!(
            split(5, &[1, 1]),
            Some(vec![3, 2]),
            "a tie goes to the higher lane"
        );
        assert_eq!(split(3, &[1, 99]), Some(vec![1, 2]));
        assert_eq!(split(1, &[1, 9]), None);
        assert_eq!(split(7, &[3]), Some(vec![7]));
        let big = split(1 << 48, &[MAX_WEIGHT, 1, 7]).unwrap();
        assert_eq!(big.iter().sum::<u64>(), 1 << 48);
    }
}
