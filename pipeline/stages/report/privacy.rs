//! Small-cell suppression for everything the reports show about people.
//!
//! # Rules
//!
//! - **Primary**: a figure computed from fewer than `privacy.min_cell` people is not shown.
//! - **Secondary**: chosen by the attacker's audit (`report/audit.rs`), not by a rule of thumb:
//!   while a hidden figure can be narrowed below `privacy.protection_width` from the published
//!   figures (or its n pinned), one more figure is hidden (the heat maps in
//!   `report/network.rs`, the units in `report/municipality.rs`). A heat map's margins are the
//!   means of its shown cells only, so its hidden cells enter no published figure.
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
    /// Suppressed only to protect another cell (secondary suppression).
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

/// Primary suppression of a grid of cells (None = no figure).
pub fn suppress_grid(grid: &mut [Vec<Option<Cell>>], min_cell: i64) {
    for row in grid.iter_mut() {
        suppress_line(row.iter_mut().flatten(), min_cell);
    }
}

/// Primary suppression of a line of cells.
pub fn suppress_line<'a>(cells: impl IntoIterator<Item = &'a mut Cell>, min_cell: i64) {
    for c in cells {
        if c.n < min_cell {
            c.suppressed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cells_from_fewer_than_min_cell_people_are_hidden() {
        let mut g = vec![
            vec![
                Some(Cell::new(3.0, 4, true)),
                None,
                Some(Cell::new(3.0, 5, true)),
            ],
            vec![
                Some(Cell::new(3.0, 1, false)),
                Some(Cell::new(3.0, 9, true)),
                None,
            ],
        ];
        suppress_grid(&mut g, 5);
        let hidden: Vec<(usize, usize)> = (0..2)
            .flat_map(|r| (0..3).map(move |c| (r, c)))
            .filter(|&(r, c)| g[r][c].is_some_and(|x| x.suppressed))
            .collect();
        assert_eq!(hidden, vec![(0, 0), (1, 0)]);
        assert!(g.iter().flatten().flatten().all(|c| !c.secondary));
    }
}
