//! The long answers of one wave turned into one row per tie, respondent or citizen, in one pass
//! over the rows in Rust.
//!
//! Every key column is interned as it is read (each distinct string gets a number in order of
//! first appearance; a cell equal to the previous row's reuses its number without hashing), and
//! each group (a tie, respondent or citizen) is found by its key numbers. Per group the pass
//! keeps the value of each item, whether an item came twice (an error, see the stage doc), its
//! first row and its smallest line (to name it in that error). Groups come out in order of first
//! appearance; the stage sorts its rows by the byte order of their key strings, through
//! [`Interned::ranks`], without comparing strings row by row.
//!
//! This replaces a polars `group_by` with one `filter(item == ...).first()` aggregation per item
//! and a second string-keyed grouping to count rows by category: the same groups and values
//! (pinned by the test at the foot of this file against that formulation), several times faster.

use std::rc::Rc;

use polars::prelude::{InitHashMaps, PlHashMap};

/// The distinct strings of one key column, numbered in order of first appearance.
#[derive(Default)]
pub struct Interned<'a> {
    ids: PlHashMap<&'a str, u32>,
    pub values: Vec<&'a str>,
    last: Option<(&'a str, u32)>,
}

impl<'a> Interned<'a> {
    /// The number of `s` (a new number when it is new).
    pub fn id(&mut self, s: &'a str) -> u32 {
        if let Some((p, c)) = self.last {
            if p == s {
                return c;
            }
        }
        let values = &mut self.values;
        let c = *self.ids.entry(s).or_insert_with(|| {
            values.push(s);
            (values.len() - 1) as u32
        });
        self.last = Some((s, c));
        c
    }

    /// The rank of each number's string in byte order (the order of `str`'s `Ord`).
    pub fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.values.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.values[a as usize].cmp(self.values[b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
    }

    /// One shared string per number.
    pub fn shared(&self) -> Vec<Rc<str>> {
        self.values.iter().map(|s| Rc::from(*s)).collect()
    }
}

/// Where an item's value goes in a pivot: its value columns (an item listed twice in the
/// instrument fills both) and its number among the pivot's distinct items.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    pub columns: Vec<usize>,
    pub distinct: usize,
}

/// The slots of each item of `items` (the pivot's value columns, in order), by item name.
pub fn slots(items: &[String]) -> PlHashMap<&str, Slots> {
    let mut out: PlHashMap<&str, Slots> = PlHashMap::new();
    for (j, it) in items.iter().enumerate() {
        let n = out.len();
        out.entry(it.as_str())
            .or_insert_with(|| Slots {
                columns: vec![],
                distinct: n,
            })
            .columns
            .push(j);
    }
    out
}

/// Groups keyed by `K` interned key numbers, with `width` value columns.
pub struct Pivot<const K: usize> {
    width: usize,
    n_distinct: usize,
    map: PlHashMap<[u32; K], u32>,
    last: Option<([u32; K], u32)>,
    /// Key numbers of each group.
    pub keys: Vec<[u32; K]>,
    /// `width` values per group.
    pub values: Vec<Option<f64>>,
    seen: Vec<bool>,
    /// Whether the group had an item twice.
    pub duplicate: Vec<bool>,
    /// First row of each group (in the frame's order), and the group's smallest line.
    pub first_row: Vec<u32>,
    pub min_line: Vec<i64>,
}

impl<const K: usize> Pivot<K> {
    pub fn new(width: usize, n_distinct: usize) -> Self {
        Pivot {
            width,
            n_distinct,
            map: PlHashMap::new(),
            last: None,
            keys: vec![],
            values: vec![],
            seen: vec![],
            duplicate: vec![],
            first_row: vec![],
            min_line: vec![],
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Adds one answer row to its group.
    pub fn add(&mut self, key: [u32; K], slots: &Slots, value: Option<f64>, row: usize, line: i64) {
        let g = match self.last {
            Some((k, g)) if k == key => g as usize,
            _ => {
                let next = self.keys.len() as u32;
                let g = *self.map.entry(key).or_insert(next);
                if g == next {
                    self.keys.push(key);
                    self.values.resize(self.values.len() + self.width, None);
                    self.seen.resize(self.seen.len() + self.n_distinct, false);
                    self.duplicate.push(false);
                    self.first_row.push(row as u32);
                    self.min_line.push(line);
                }
                self.last = Some((key, g));
                g as usize
            }
        };
        if line < self.min_line[g] {
            self.min_line[g] = line;
        }
        let seen = &mut self.seen[g * self.n_distinct + slots.distinct];
        if *seen {
            self.duplicate[g] = true;
            return;
        }
        *seen = true;
        for &c in &slots.columns {
            self.values[g * self.width + c] = value;
        }
    }

    /// The values of group `g`.
    pub fn row(&self, g: usize) -> &[Option<f64>] {
        &self.values[g * self.width..(g + 1) * self.width]
    }

    /// The group with an item twice and the smallest line, if any (the one the error names).
    pub fn first_duplicate(&self) -> Option<usize> {
        (0..self.len())
            .filter(|&g| self.duplicate[g])
            .min_by_key(|&g| (self.min_line[g], g))
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    /// The formulation this pass replaced: a polars group_by with one filtered `first` per item.
    fn polars_pivot(df: &DataFrame, items: &[String]) -> Vec<(String, String, Vec<Option<f64>>)> {
        let mut aggs = vec![len().alias("n_rows")];
        for (j, it) in items.iter().enumerate() {
            aggs.push(
                col("value")
                    .filter(col("item").eq(lit(it.as_str())))
                    .first()
                    .alias(format!("v{j}")),
            );
        }
        let is_item = items
            .iter()
            .map(|v| col("item").eq(lit(v.as_str())))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false));
        let g = df
            .clone()
            .lazy()
            .filter(is_item)
            .group_by([col("a"), col("b")])
            .agg(aggs)
            .collect()
            .unwrap();
        let a: Vec<_> = g.column("a").unwrap().str().unwrap().iter().collect();
        let b: Vec<_> = g.column("b").unwrap().str().unwrap().iter().collect();
        let mut out: Vec<_> = (0..g.height())
            .map(|i| {
                let v = (0..items.len())
                    .map(|j| g.column(&format!("v{j}")).unwrap().f64().unwrap().get(i))
                    .collect();
                (a[i].unwrap().to_string(), b[i].unwrap().to_string(), v)
            })
            .collect();
        out.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        out
    }

    #[test]
    fn one_pass_gives_the_groups_and_values_of_the_polars_pivot() {
        // Unsorted rows, keys repeating out of order, an item outside the pivot, missing values,
        // an item listed twice in the instrument, and multi-byte text (byte order).
        let a = ["x", "y", "x", "é", "x", "y", "é", "x", "Z", "y"];
        let b = ["1", "1", "2", "1", "1", "1", "1", "2", "1", "2"];
        let item = ["p", "p", "q", "p", "q", "r", "q", "p", "zz", "q"];
        let value = [
            Some(1.0),
            None,
            Some(3.0),
            Some(4.0),
            Some(5.0),
            Some(6.0),
            None,
            Some(8.0),
            Some(9.0),
            Some(10.0),
        ];
        let df = DataFrame::new_infer_height(vec![
            Column::new("a".into(), a),
            Column::new("b".into(), b),
            Column::new("item".into(), item),
            Column::new("value".into(), value),
        ])
        .unwrap();
        let items: Vec<String> = ["p", "q", "r", "p"].map(String::from).to_vec();
        let want = polars_pivot(&df, &items);

        let slots = slots(&items);
        let (mut ia, mut ib) = (Interned::default(), Interned::default());
        let mut pivot: Pivot<2> = Pivot::new(items.len(), slots.len());
        for row in 0..a.len() {
            if let Some(s) = slots.get(item[row]) {
                let key = [ia.id(a[row]), ib.id(b[row])];
                pivot.add(key, s, value[row], row, row as i64 + 1);
            }
        }
        assert_eq!(pivot.first_duplicate(), None);
        let (ra, rb) = (ia.ranks(), ib.ranks());
        let mut order: Vec<usize> = (0..pivot.len()).collect();
        order.sort_by_key(|&g| (ra[pivot.keys[g][0] as usize], rb[pivot.keys[g][1] as usize]));
        let got: Vec<_> = order
            .iter()
            .map(|&g| {
                let k = pivot.keys[g];
                (
                    ia.values[k[0] as usize].to_string(),
                    ib.values[k[1] as usize].to_string(),
                    pivot.row(g).to_vec(),
                )
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 5);
        // "x" < "y" < "é" in byte order ("Z" has no pivot item: no group).
        assert_eq!(got[0].0, "x");
        assert_eq!(got[4].0, "é");

        // An item twice in a group is found, and the group with the smallest line is named.
        pivot.add([0, 1], &slots["q"], Some(1.0), 10, 0);
        pivot.add([0, 0], &slots["p"], Some(1.0), 11, 12);
        // Groups in order of appearance: (x,1), (y,1), (x,2), ...; (x,2) gets `q` twice.
        assert_eq!(pivot.first_duplicate(), Some(2));
        assert_eq!(pivot.first_row[2], 2);
        assert_eq!(pivot.min_line[2], 0);
    }
}
