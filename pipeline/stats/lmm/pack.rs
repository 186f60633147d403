//! Packing the fixed-effect columns of the penalized least-squares solve into fewer right-hand
//! sides, an exact reformulation for designs whose factor dummies live in separate blocks of the
//! random effects (municipality dummies with units nested in municipalities).
//!
//! M = Λ'Z'ZΛ + I is block diagonal over the connected components of the graph of Z'Z (two
//! random-effect levels are joined when an observation has both). So is M⁻¹, and column j of
//! C = M⁻¹B (B = Λ'Z'X) is zero outside the components of the observations where x_j ≠ 0, its
//! *support*. Columns with disjoint supports can share one right-hand side: the solve of their
//! sum gives, on each component, the solve of the one column that is non-zero there. Each
//! column gets the first *colour* (packed column) whose columns' supports it does not meet
//! (greedy colouring); the municipality dummies of a pooled model share one colour, so the
//! solve and the cross-products B'C of a national model take a handful of columns instead of a
//! hundred. Every entry of C is the one the unpacked solve gives on the same factor; B'C is then
//! summed component by component (the zero blocks of the unpacked product left out), which
//! changes only the order of the additions.

/// No column: the colour has no column with support in this component.
pub(super) const NONE: u32 = u32::MAX;

/// How the p fixed-effect columns (and y, the last packed column) share right-hand sides.
pub(super) struct Packing {
    /// Packed column of each fixed-effect column.
    pub(super) colour: Vec<usize>,
    /// Number of colours (packed fixed-effect columns); y is packed column `colours`.
    pub(super) colours: usize,
    /// Component of each random-effect coordinate.
    pub(super) comp_of_coord: Vec<u32>,
    /// The coordinates of each component (CSR: `comp_ptr[c]..comp_ptr[c + 1]` in `coords`).
    pub(super) comp_ptr: Vec<usize>,
    pub(super) coords: Vec<u32>,
    /// `owner[s * n_comp + c]`: the fixed-effect column of colour s with support in component
    /// c, or [`NONE`]; colour `colours` (y) is owned by column p everywhere.
    owner: Vec<u32>,
}

impl Packing {
    /// Whether some columns share a colour (otherwise the solve is the unpacked one).
    pub(super) fn packs(&self) -> bool {
        self.colours < self.colour.len()
    }

    pub(super) fn n_comp(&self) -> usize {
        self.comp_ptr.len() - 1
    }

    /// The column (0..p, or p for y) that packed column `s` holds in component `c`.
    pub(super) fn owner(&self, s: usize, c: usize) -> u32 {
        if s == self.colours {
            self.colour.len() as u32
        } else {
            self.owner[s * self.n_comp() + c]
        }
    }

    /// The packing of the columns of x (`rows_of(j)`: the rows where x_j may be non-zero, None
    /// for all; `is_nonzero(i, j)` decides) for grouping factors with the given coordinate
    /// offsets and level codes, q coordinates in all. Without `pack` every column is its own
    /// colour (the unpacked solve, for tests).
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub(super) fn new(
        pack: bool,
        p: usize,
        n: usize,
        q: usize,
        offsets: &[usize],
        codes: &[&[u32]],
        rows_of: &dyn Fn(usize) -> Option<Vec<u32>>,
        is_nonzero: &dyn Fn(usize, usize) -> bool,
    ) -> Packing {
        let comp_of_coord = components(n, q, offsets, codes);
        let n_comp = comp_of_coord
            .iter()
            .map(|&c| c as usize + 1)
            .max()
            .unwrap_or(0);
        let mut comp_ptr = vec![0usize; n_comp + 1];
        for &c in &comp_of_coord {
            comp_ptr[c as usize + 1] += 1;
        }
        for c in 0..n_comp {
            comp_ptr[c + 1] += comp_ptr[c];
        }
        let mut fill = comp_ptr.clone();
        let mut coords = vec![0u32; q];
        for (r, &c) in comp_of_coord.iter().enumerate() {
            coords[fill[c as usize]] = r as u32;
            fill[c as usize] += 1;
        }
        // The component of an observation: that of its first factor's level (all its levels
        // are in one component).
        let comp_of_row = |i: usize| comp_of_coord[offsets[0] + codes[0][i] as usize];
        let mut colour = Vec::with_capacity(p);
        // Per colour: which components its columns occupy, by owner.
        let mut owner: Vec<Vec<u32>> = Vec::new();
        let mut support = vec![false; n_comp];
        for j in 0..p {
            support.iter_mut().for_each(|s| *s = false);
            match rows_of(j) {
                Some(rows) => {
                    for &i in &rows {
                        support[comp_of_row(i as usize) as usize] = true;
                    }
                }
                None => {
                    for i in 0..n {
                        if is_nonzero(i, j) {
                            support[comp_of_row(i) as usize] = true;
                        }
                    }
                }
            }
            let free = |o: &Vec<u32>| support.iter().zip(o).all(|(&s, &w)| !s || w == NONE);
            let s = match owner.iter().position(free).filter(|_| pack) {
                Some(s) => s,
                None => {
                    owner.push(vec![NONE; n_comp]);
                    owner.len() - 1
                }
            };
            for (w, &sup) in owner[s].iter_mut().zip(&support) {
                if sup {
                    *w = j as u32;
                }
            }
            colour.push(s);
        }
        let colours = owner.len();
        Packing {
            colour,
            colours,
            comp_of_coord,
            comp_ptr,
            coords,
            owner: owner.concat(),
        }
    }
}

/// The connected components of the random-effect coordinates (joined through the observations
/// that have both), numbered in order of first appearance among the coordinates.
#[allow(clippy::needless_range_loop)]
fn components(n: usize, q: usize, offsets: &[usize], codes: &[&[u32]]) -> Vec<u32> {
    let mut parent: Vec<u32> = (0..q as u32).collect();
    fn root(parent: &mut [u32], mut a: u32) -> u32 {
        while parent[a as usize] != a {
            let up = parent[parent[a as usize] as usize];
            parent[a as usize] = up;
            a = up;
        }
        a
    }
    for i in 0..n {
        let first = (offsets[0] + codes[0][i] as usize) as u32;
        for f in 1..codes.len() {
            let other = (offsets[f] + codes[f][i] as usize) as u32;
            let (a, b) = (root(&mut parent, first), root(&mut parent, other));
            if a != b {
                parent[a.max(b) as usize] = a.min(b);
            }
        }
    }
    let mut label = vec![NONE; q];
    let mut next = 0u32;
    let mut out = vec![0u32; q];
    for (r, o) in out.iter_mut().enumerate() {
        let a = root(&mut parent, r as u32) as usize;
        if label[a] == NONE {
            label[a] = next;
            next += 1;
        }
        *o = label[a];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_dummies_share_a_colour_and_crossed_ones_do_not() {
        // Six observations, units 0..3 nested in groups A (units 0, 1) and B (unit 2); a second
        // factor whose level 0 joins units 0 and 1 (observations 0 and 2).
        let unit = [0u32, 0, 1, 1, 2, 2];
        let other = [0u32, 1, 0, 2, 3, 4];
        let offsets = [0usize, 3];
        let codes: [&[u32]; 2] = [&unit, &other];
        // Columns: intercept, dummy of A, dummy of B, a column non-zero in A and B.
        let x = |i: usize, j: usize| -> f64 {
            match j {
                0 => 1.0,
                1 => f64::from(u8::from(i < 4)),
                2 => f64::from(u8::from(i >= 4)),
                _ => f64::from(u8::from(i == 0 || i == 5)),
            }
        };
        let pk = Packing::new(true, 4, 6, 8, &offsets, &codes, &|_| None, &|i, j| {
            x(i, j) != 0.0
        });
        // Components: {unit 0, unit 1, other 0, 1, 2} and {unit 2, other 3, 4}.
        assert_eq!(pk.n_comp(), 2);
        assert_eq!(pk.comp_of_coord, vec![0, 0, 1, 0, 0, 0, 1, 1]);
        assert_eq!(pk.colour, vec![0, 1, 1, 2]);
        assert!(pk.packs());
        assert_eq!((pk.owner(1, 0), pk.owner(1, 1)), (1, 2));
        assert_eq!((pk.owner(0, 1), pk.owner(3, 0)), (0, 4));
        let un = Packing::new(false, 4, 6, 8, &offsets, &codes, &|_| None, &|i, j| {
            x(i, j) != 0.0
        });
        assert_eq!(un.colour, vec![0, 1, 2, 3]);
        assert!(!un.packs());
    }
}
