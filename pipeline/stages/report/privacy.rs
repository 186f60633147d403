//! Small-cell suppression for everything the reports show about people.
//!
//! # Rules
//!
//! - **Primary**: a figure computed from fewer than `privacy.min_cell` people is not shown.
//! - **Complementary**: where a margin computed from a line of cells is shown (a work group's
//!   in- or out-strength beside its row or column of the heat map, a municipality's mean beside
//!   its units), a single suppressed cell in that line could be recovered by subtraction. Then a
//!   second cell of the line is suppressed too: the one with the fewest people (ties: the first
//!   in display order); with no other cell left, the margin is suppressed instead. Rows and
//!   columns are revisited until nothing changes, because a cell suppressed for its row can leave
//!   a single suppressed cell in its column.
//! - A margin computed from fewer than `min_cell` people is suppressed itself.
//! - A change between two waves is shown only when both waves' cells are shown; otherwise the
//!   change and the shown wave would give away the other.
//!
//! Every shown figure carries its n (`data-n` in the markup) so a test can check the rules on
//! the rendered reports.

/// One figure and the number of people it is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub value: f64,
    pub n: i64,
    pub suppressed: bool,
    /// Suppressed only to protect another cell (complementary suppression).
    pub secondary: bool,
    /// The cell enters the margins of its row and column.
    pub in_margin: bool,
}

impl Cell {
    pub fn new(value: f64, n: i64, in_margin: bool) -> Cell {
        Cell {
            value,
            n,
            suppressed: false,
            secondary: false,
            in_margin,
        }
    }
}

/// Suppresses the cells of one line (a row or a column) around a shown margin; returns true
/// when something changed. `margin_suppressed` is set when the margin itself has to go.
fn protect_line(cells: &mut [&mut Cell], margin_suppressed: &mut bool) -> bool {
    if *margin_suppressed {
        return false;
    }
    let in_margin: Vec<usize> = (0..cells.len()).filter(|&i| cells[i].in_margin).collect();
    let hidden = in_margin.iter().filter(|&&i| cells[i].suppressed).count();
    if hidden != 1 {
        return false;
    }
    let candidate = in_margin
        .iter()
        .copied()
        .filter(|&i| !cells[i].suppressed)
        .min_by_key(|&i| (cells[i].n, i));
    match candidate {
        Some(i) => {
            cells[i].suppressed = true;
            cells[i].secondary = true;
        }
        None => *margin_suppressed = true,
    }
    true
}

/// The suppression of a grid of cells (None = no figure) with optional row and column margins,
/// given by the number of people each margin is computed from (`None`: no margins on that
/// side). Returns, per row and per column, whether its margin is not shown (absent or
/// suppressed).
pub fn suppress_grid(
    grid: &mut [Vec<Option<Cell>>],
    row_margin_n: Option<&[i64]>,
    col_margin_n: Option<&[i64]>,
    min_cell: i64,
) -> (Vec<bool>, Vec<bool>) {
    let rows = grid.len();
    let cols = grid.iter().map(Vec::len).max().unwrap_or(0);
    for row in grid.iter_mut() {
        for c in row.iter_mut().flatten() {
            if c.n < min_cell {
                c.suppressed = true;
            }
        }
    }
    // A margin from fewer than min_cell people is suppressed itself; a margin not shown needs
    // no protection.
    let hidden =
        |m: Option<&[i64]>, i: usize| m.is_none_or(|v| v.get(i).is_none_or(|&n| n < min_cell));
    let mut row_sup: Vec<bool> = (0..rows).map(|r| hidden(row_margin_n, r)).collect();
    let mut col_sup: Vec<bool> = (0..cols).map(|c| hidden(col_margin_n, c)).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (r, row) in grid.iter_mut().enumerate() {
            let mut line: Vec<&mut Cell> = row.iter_mut().flatten().collect();
            changed |= protect_line(&mut line, &mut row_sup[r]);
        }
        for (c, sup) in col_sup.iter_mut().enumerate() {
            let mut line: Vec<&mut Cell> = grid
                .iter_mut()
                .filter_map(|row| row.get_mut(c).and_then(Option::as_mut))
                .collect();
            changed |= protect_line(&mut line, sup);
        }
    }
    (row_sup, col_sup)
}

/// A line of cells with a total computed from the same people (a municipality's units and its
/// mean; `total_n` = None when no total is shown): returns whether the total must be hidden.
pub fn suppress_line(cells: &mut [Cell], total_n: Option<i64>, min_cell: i64) -> bool {
    let mut grid = vec![cells.iter().copied().map(Some).collect::<Vec<_>>()];
    let margin = total_n.map(|n| vec![n]);
    let (rows, _) = suppress_grid(&mut grid, margin.as_deref(), None, min_cell);
    for (c, g) in cells.iter_mut().zip(&grid[0]) {
        if let Some(g) = g {
            *c = *g;
        }
    }
    rows[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(ns: &[&[i64]]) -> Vec<Vec<Option<Cell>>> {
        ns.iter()
            .map(|row| {
                row.iter()
                    .map(|&n| (n >= 0).then(|| Cell::new(3.0, n, true)))
                    .collect()
            })
            .collect()
    }

    fn hidden(g: &[Vec<Option<Cell>>]) -> Vec<(usize, usize)> {
        let mut out = vec![];
        for (r, row) in g.iter().enumerate() {
            for (c, x) in row.iter().enumerate() {
                if x.is_some_and(|x| x.suppressed) {
                    out.push((r, c));
                }
            }
        }
        out
    }

    #[test]
    fn nothing_small_nothing_suppressed() {
        let mut g = grid(&[&[5, 9], &[7, 5]]);
        let (r, c) = suppress_grid(&mut g, Some(&[14, 12]), Some(&[12, 14]), 5);
        assert!(hidden(&g).is_empty());
        assert_eq!((r, c), (vec![false, false], vec![false, false]));
    }

    #[test]
    fn one_small_cell_takes_the_smallest_other_of_its_row_and_column() {
        // Worked by hand: (0,0) n=2 is primary. Row 0 then has one hidden cell: the smallest
        // other is (0,2) n=6. Column 0 has one hidden cell: smallest other (2,0) n=7. Column 2
        // now has (0,2) alone: smallest other (1,2) n=8. Row 2 has (2,0) alone: smallest
        // other is (2,2) n=9 ... and so on until every line has 0 or ≥ 2 hidden cells.
        let mut g = grid(&[&[2, 10, 6], &[20, 30, 8], &[7, 40, 9]]);
        suppress_grid(&mut g, Some(&[18, 58, 56]), Some(&[29, 80, 23]), 5);
        let h = hidden(&g);
        for r in 0..3 {
            let k = h.iter().filter(|x| x.0 == r).count();
            assert!(k != 1, "row {r} has exactly one hidden cell: {h:?}");
        }
        for c in 0..3 {
            let k = h.iter().filter(|x| x.1 == c).count();
            assert!(k != 1, "column {c} has exactly one hidden cell: {h:?}");
        }
        assert!(h.contains(&(0, 0)) && h.contains(&(0, 2)) && h.contains(&(2, 0)));
        assert!(!h.contains(&(1, 1)), "the large cell stays: {h:?}");
        assert!(g[0][0].unwrap().suppressed && !g[0][0].unwrap().secondary);
        assert!(g[0][2].unwrap().secondary);
    }

    #[test]
    fn without_margins_only_primary_suppression() {
        let mut g = grid(&[&[2, 10, 6], &[20, 30, 8]]);
        suppress_grid(&mut g, None, None, 5);
        assert_eq!(hidden(&g), vec![(0, 0)]);
    }

    #[test]
    fn a_margin_from_too_few_people_is_hidden_and_protects_nothing() {
        let mut g = grid(&[&[3, 9]]);
        let (rows, _) = suppress_grid(&mut g, Some(&[4]), None, 5);
        assert_eq!(rows, vec![true]);
        assert_eq!(hidden(&g), vec![(0, 0)]);
    }

    #[test]
    fn line_with_total_hides_the_smallest_other_unit() {
        let mut cells = vec![
            Cell::new(3.1, 12, true),
            Cell::new(2.0, 2, true),
            Cell::new(3.3, 6, true),
            Cell::new(3.5, 9, true),
        ];
        let total = suppress_line(&mut cells, Some(29), 5);
        assert!(!total);
        let h: Vec<bool> = cells.iter().map(|c| c.suppressed).collect();
        assert_eq!(h, vec![false, true, true, false]);
    }

    #[test]
    fn a_line_of_two_with_one_small_hides_the_total() {
        // Two units, one with 3 people: hiding the other unit leaves nothing shown beside the
        // total, and the total (n = 13 ≥ 5) and the other unit together would still give it
        // away: the other unit is hidden; then no cell is left to protect, nothing else moves.
        let mut cells = vec![Cell::new(3.1, 10, true), Cell::new(2.0, 3, true)];
        let total = suppress_line(&mut cells, Some(13), 5);
        assert!(cells.iter().all(|c| c.suppressed));
        assert!(!total);
        // A single small unit alone: its total is the unit itself, from too few people.
        let mut one = vec![Cell::new(2.0, 3, true)];
        assert!(suppress_line(&mut one, Some(3), 5));
    }

    #[test]
    fn cells_outside_the_margin_are_not_protected_by_it() {
        let mut g = vec![vec![
            Some(Cell::new(3.0, 2, false)),
            Some(Cell::new(3.0, 9, true)),
            Some(Cell::new(3.0, 9, true)),
        ]];
        suppress_grid(&mut g, Some(&[18]), None, 5);
        assert_eq!(hidden(&g), vec![(0, 0)]);
    }
}
