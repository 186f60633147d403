//! Ordering rows by key for `clean`: dense order-preserving codes per column, one sort of
//! row numbers by those codes, and the "same as the previous row" flags that find exact copies
//! and rows sharing a key.
//!
//! Why not polars' multi-column sort: sorting 20 million answers by (wave, 32-character
//! pseudonym, target group, item, ...) through row encoding took most of the stage's time.
//! Every column is first replaced by dense codes (equal values get equal codes, the order of
//! the codes is the order of the values, null is 0 and sorts first), which costs one hash
//! lookup per cell; the rows are then sorted by their codes, packed into one `u128` when the
//! codes fit, which is a plain integer sort. String order is byte order, as in polars.

use std::cmp::Ordering;

use anyhow::{bail, Result};
use polars::prelude::*;

/// Dense codes of a column: null is 0, the smallest value 1, and so on; equal values share a
/// code. Floats compare numerically (-0.0 equals 0.0); NaN is not expected (ingest refuses it)
/// and sorts last if it occurs.
pub fn dense_codes(c: &Column) -> Result<Vec<u32>> {
    Ok(match c.dtype() {
        DataType::String => {
            let ca = c.str()?;
            codes_of(|| ca.iter(), |a: &&str, b: &&str| a.cmp(b))
        }
        DataType::Int64 => {
            let ca = c.i64()?;
            codes_of(|| ca.iter(), |a: &i64, b: &i64| a.cmp(b))
        }
        DataType::Float64 => {
            let ca = c.f64()?;
            // Keyed by bits (after making -0.0 into 0.0), ordered numerically.
            codes_of(
                || {
                    ca.iter()
                        .map(|v| v.map(|x| if x == 0.0 { 0f64 } else { x }.to_bits()))
                },
                |a: &u64, b: &u64| f64::from_bits(*a).total_cmp(&f64::from_bits(*b)),
            )
        }
        DataType::Boolean => c
            .bool()?
            .iter()
            .map(|v| match v {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            })
            .collect(),
        other => bail!(
            "column {} has type {other}, which cannot be ordered here",
            c.name()
        ),
    })
}

/// [`dense_codes`] of the named columns of `df`, computed on two threads (the columns are
/// independent; the stage runs on two cores). The result is the same as column by column.
pub fn dense_codes_of(df: &DataFrame, columns: &[&str]) -> Result<Vec<Vec<u32>>> {
    let cols: Vec<&Column> = columns
        .iter()
        .map(|c| df.column(c))
        .collect::<PolarsResult<_>>()?;
    crate::stages::map_on_two_threads(&cols, |c| dense_codes(c))
        .into_iter()
        .collect()
}

/// Codes for the optional values `values()` yields, under a total order `cmp` consistent with
/// `Eq`, in two passes: the first gives each distinct value a provisional number in order of
/// first appearance (one hash lookup per cell; consecutive equal cells, common in long tables,
/// reuse the last number), the distinct values are then sorted, and the second pass turns each
/// provisional number into its rank (an array lookup, no hashing).
fn codes_of<T, I, V, F>(values: V, cmp: F) -> Vec<u32>
where
    T: Copy + Eq + std::hash::Hash,
    I: Iterator<Item = Option<T>>,
    V: Fn() -> I,
    F: Fn(&T, &T) -> Ordering,
{
    let mut seen: PlHashMap<T, u32> = PlHashMap::new();
    let mut distinct: Vec<T> = Vec::new();
    let mut last: Option<(T, u32)> = None;
    // Provisional numbers from 1 (0 is null).
    let mut codes: Vec<u32> = values()
        .map(|v| match v {
            None => 0,
            Some(x) => match last {
                Some((p, c)) if p == x => c,
                _ => {
                    let c = *seen.entry(x).or_insert_with(|| {
                        distinct.push(x);
                        distinct.len() as u32
                    });
                    last = Some((x, c));
                    c
                }
            },
        })
        .collect();
    drop(seen);
    let mut by_value: Vec<u32> = (0..distinct.len() as u32).collect();
    by_value.sort_unstable_by(|&a, &b| cmp(&distinct[a as usize], &distinct[b as usize]));
    // rank[provisional] = code; rank[0] = 0 keeps null first.
    let mut rank = vec![0u32; distinct.len() + 1];
    for (r, &p) in by_value.iter().enumerate() {
        rank[p as usize + 1] = r as u32 + 1;
    }
    for c in &mut codes {
        *c = rank[*c as usize];
    }
    codes
}

/// The row order: by `codes` column by column, then by row number (so the first of equal rows
/// comes first). Returns the permutation (row numbers in sorted order).
pub fn sorted_rows(codes: &[Vec<u32>], n: usize) -> Vec<u32> {
    let bits: Vec<u32> = codes.iter().map(|c| width(c)).collect();
    let row_bits = width_of(n as u64);
    let total: u32 = bits.iter().sum::<u32>() + row_bits;
    if total <= 128 {
        let mut packed: Vec<u128> = (0..n)
            .map(|i| {
                let mut k: u128 = 0;
                for (c, &b) in codes.iter().zip(&bits) {
                    k = (k << b) | c[i] as u128;
                }
                (k << row_bits) | i as u128
            })
            .collect();
        packed.sort_unstable();
        let mask = (1u128 << row_bits) - 1;
        packed.into_iter().map(|k| (k & mask) as u32).collect()
    } else {
        sorted_rows_by_comparison(codes, n)
    }
}

/// The same order as [`sorted_rows`] by comparing codes column by column: for codes too wide
/// to pack.
pub fn sorted_rows_by_comparison(codes: &[Vec<u32>], n: usize) -> Vec<u32> {
    let mut rows: Vec<u32> = (0..n as u32).collect();
    rows.sort_unstable_by(|&a, &b| {
        for c in codes {
            match c[a as usize].cmp(&c[b as usize]) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        a.cmp(&b)
    });
    rows
}

/// Bits needed for the largest code of a column.
fn width(codes: &[u32]) -> u32 {
    width_of(codes.iter().copied().max().unwrap_or(0) as u64)
}

fn width_of(max: u64) -> u32 {
    64 - max.leading_zeros()
}

/// For rows in `order`: whether each row equals the previous one in the first `k` code
/// columns (false for the first row).
pub fn same_as_previous(codes: &[Vec<u32>], order: &[u32], k: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(order.len());
    for (pos, &row) in order.iter().enumerate() {
        let same = pos > 0 && {
            let prev = order[pos - 1] as usize;
            codes[..k].iter().all(|c| c[row as usize] == c[prev])
        };
        out.push(same);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_order_and_nulls_first() {
        let s = Column::new(
            "s".into(),
            [Some("b"), None, Some("a"), Some("b"), Some("é")],
        );
        assert_eq!(dense_codes(&s).unwrap(), vec![2, 0, 1, 2, 3]);
        let f = Column::new(
            "f".into(),
            [Some(2.5), Some(-0.0), None, Some(0.0), Some(-1.0)],
        );
        assert_eq!(dense_codes(&f).unwrap(), vec![3, 2, 0, 2, 1]);
        let i = Column::new("i".into(), [Some(10i64), Some(-3), Some(10)]);
        assert_eq!(dense_codes(&i).unwrap(), vec![2, 1, 2]);
        let b = Column::new("b".into(), [Some(true), None, Some(false)]);
        assert_eq!(dense_codes(&b).unwrap(), vec![2, 0, 1]);
        // Several columns at once (on two threads): the same codes, in the order asked.
        let df = DataFrame::new_infer_height(vec![s, f]).unwrap();
        let both = dense_codes_of(&df, &["f", "s", "f"]).unwrap();
        assert_eq!(both[0], vec![3, 2, 0, 2, 1]);
        assert_eq!(both[1], vec![2, 0, 1, 2, 3]);
        assert_eq!(both[2], vec![3, 2, 0, 2, 1]);
    }

    #[test]
    fn packed_and_compared_orders_agree() {
        // Two key columns; rows 0 and 3 tie, so row number decides.
        let codes = vec![vec![2, 1, 2, 2, 0], vec![1, 5, 0, 1, 3]];
        let want = vec![4, 1, 2, 0, 3];
        assert_eq!(sorted_rows(&codes, 5), want);
        assert_eq!(sorted_rows_by_comparison(&codes, 5), want);
        // Too wide to pack: 5 columns of 30 bits each.
        let wide: Vec<Vec<u32>> = (0..5).map(|j| vec![1 << 29, j, 1 << 29]).collect();
        assert_eq!(sorted_rows(&wide, 3), sorted_rows_by_comparison(&wide, 3));
    }

    #[test]
    fn same_as_previous_in_the_first_k_columns() {
        let codes = vec![vec![1, 1, 2], vec![5, 6, 6]];
        let order = vec![0, 1, 2];
        assert_eq!(
            same_as_previous(&codes, &order, 1),
            vec![false, true, false]
        );
        assert_eq!(
            same_as_previous(&codes, &order, 2),
            vec![false, false, false]
        );
    }
}
