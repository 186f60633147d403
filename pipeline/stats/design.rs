//! Plain column data and the model matrix built from a [`Formula`], the way R's `model.frame` +
//! `model.matrix` (and lme4's grouping factors) do it.
//!
//! * Rows with a missing value (or NaN) in any column the model uses (response, fixed effects,
//!   random-effect grouping columns, and extra columns the caller names, such as a cluster column)
//!   are dropped and counted; `kept_rows` maps design rows back to data rows. An infinite value in
//!   a used numeric column is an error (R: "NA/NaN/Inf in 'x'").
//! * String and boolean columns, and `C(x)` / `factor(x)` / `as.factor(x)`, are factors with
//!   treatment contrasts; the reference is the first level. Levels are taken from the kept rows:
//!   strings sorted in plain byte order (R sorts with the locale's collation; for ASCII
//!   letters-and-digits labels in the C locale that is the same, in other locales upper/lower case
//!   may interleave differently), numbers sorted numerically and labelled as R prints them (`2`,
//!   `2.5`, `1e+05`). A plain boolean column always has levels `FALSE`, `TRUE` (column `xTRUE`),
//!   as R's `model.matrix` codes logicals; `C(b)` of a boolean uses the levels present.
//! * Column names are R's: `(Intercept)`, `x`, `gB`, `C(wave)2`, `x1:x2`, `gB:x`, `I(x^2)`.
//! * Factors in interactions follow R's rule (`TermCode` in R's model.c): a factor in a term is
//!   coded by contrasts if the term without it is contained in an earlier term (or is the
//!   intercept), otherwise by one indicator column per level; without an intercept the first
//!   factor of the first term containing a factor gets indicator columns. Columns of an
//!   interaction vary the first variable fastest. This reproduces R for all term sets, including
//!   `a*b`, `a:b` without margins, `post + post:intervention` with factors or numbers.
//! * Not supported: ordered factors (polynomial contrasts), other contrast codings, matrix
//!   columns, factors with unused levels (levels are always those present after dropping rows).
//! * Random factors: levels renumbered over the kept rows, ordered as lme4 orders random terms
//!   (by decreasing number of levels, ties in formula order).

use std::collections::{BTreeMap, HashMap};

use crate::formula::{format_r_number, Formula, Variable};
use crate::types::{RandomFactor, StatsError};

/// One data column; `None` is a missing value.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Num(Vec<Option<f64>>),
    Str(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Num(v) => v.len(),
            Column::Str(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` is missing (None, or NaN for numbers).
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Column::Num(v) => v[i].is_none_or(|x| x.is_nan()),
            Column::Str(v) => v[i].is_none(),
            Column::Bool(v) => v[i].is_none(),
        }
    }

    /// Label of row `i` as R's `factor()` would print it (None if missing).
    pub fn label(&self, i: usize) -> Option<String> {
        match self {
            Column::Num(v) => v[i].filter(|x| !x.is_nan()).map(format_r_number),
            Column::Str(v) => v[i].clone(),
            Column::Bool(v) => v[i].map(|b| if b { "TRUE".into() } else { "FALSE".into() }),
        }
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    names: Vec<String>,
    columns: Vec<Column>,
    n_rows: Option<usize>,
}

impl Data {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a column; errors if the name is taken or the length differs from earlier columns.
    pub fn push(&mut self, name: impl Into<String>, column: Column) -> Result<(), StatsError> {
        let name = name.into();
        if self.names.contains(&name) {
            return Err(StatsError::InvalidArgument(format!(
                "duplicate column name `{name}`"
            )));
        }
        if let Some(n) = self.n_rows {
            if column.len() != n {
                return Err(StatsError::DimensionMismatch(format!(
                    "column `{name}` has {} rows, earlier columns {n}",
                    column.len()
                )));
            }
        }
        self.n_rows = Some(column.len());
        self.names.push(name);
        self.columns.push(column);
        Ok(())
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows.unwrap_or(0)
    }

    pub fn get(&self, name: &str) -> Option<&Column> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.columns[i])
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// The model matrix and response for a formula, with the random-intercept factors.
#[derive(Debug, Clone)]
pub struct Design {
    pub y: Vec<f64>,
    pub x: faer::Mat<f64>,
    pub names: Vec<String>,
    pub random: Vec<RandomFactor>,
    pub n_obs: usize,
    pub n_dropped: usize,
    pub kept_rows: Vec<usize>,
    pub has_intercept: bool,
    /// Response label (`y`, `log(y)`).
    pub response: String,
}

/// Builds the design of `formula` on `data`.
pub fn build(formula: &Formula, data: &Data) -> Result<Design, StatsError> {
    build_with(formula, data, &[])
}

/// Like [`build`], and also drops rows missing in the `also_required` columns (e.g. a cluster
/// column for robust standard errors), so that every returned row has them.
pub fn build_with(
    formula: &Formula,
    data: &Data,
    also_required: &[&str],
) -> Result<Design, StatsError> {
    let n = data.n_rows();
    let used = used_variables(formula);
    let mut missing = incomplete_rows(formula, &used, data, also_required)?;
    let evaluated = evaluate_expressions(formula, &used, data, &mut missing)?;
    let kept_rows: Vec<usize> = (0..n).filter(|&i| !missing[i]).collect();
    let n_obs = kept_rows.len();
    let n_dropped = n - n_obs;
    let (response, y) = response(formula, data, &kept_rows, &evaluated)?;
    let encoded = encode_variables(formula, &used, data, &kept_rows, &evaluated)?;
    let coding = factor_coding(formula, &encoded);
    let (names, cols) = model_columns(formula, &encoded, &coding, n_obs)?;
    let x = faer::Mat::from_fn(n_obs, cols.len(), |i, j| cols[j][i]);
    let random = random_factors(formula, data, &kept_rows)?;
    Ok(Design {
        y,
        x,
        names,
        random,
        n_obs,
        n_dropped,
        kept_rows,
        has_intercept: formula.intercept,
        response,
    })
}

/// The column `name` of `data`, or a formula error naming it.
fn column<'a>(data: &'a Data, name: &str) -> Result<&'a Column, StatsError> {
    data.get(name)
        .ok_or_else(|| StatsError::Formula(format!("column `{name}` not found in the data")))
}

/// Which variables of the right-hand side are used by some term.
fn used_variables(formula: &Formula) -> Vec<bool> {
    let mut used = vec![false; formula.variables.len()];
    for t in &formula.terms {
        for &v in &t.vars {
            used[v] = true;
        }
    }
    used
}

/// The rows missing a value in a column the model uses (response, used variables, random-effect
/// grouping columns, `also_required`).
fn incomplete_rows(
    formula: &Formula,
    used: &[bool],
    data: &Data,
    also_required: &[&str],
) -> Result<Vec<bool>, StatsError> {
    let mut missing = vec![false; data.n_rows()];
    let mut mark = |c: &Column| {
        for (i, m) in missing.iter_mut().enumerate() {
            if c.is_missing(i) {
                *m = true;
            }
        }
    };
    let mut needed_cols: Vec<String> = formula.response.columns();
    for (v, u) in formula.variables.iter().zip(used) {
        if *u {
            needed_cols.extend(v.columns());
        }
    }
    for r in &formula.random {
        needed_cols.extend(r.columns.iter().cloned());
    }
    needed_cols.extend(also_required.iter().map(|s| s.to_string()));
    for c in &needed_cols {
        mark(column(data, c)?);
    }
    Ok(missing)
}

/// The numeric expressions (response and used variables) evaluated on all rows not yet
/// missing, by label; NaN results mark their rows missing (as R's na.omit drops NaN).
fn evaluate_expressions(
    formula: &Formula,
    used: &[bool],
    data: &Data,
    missing: &mut [bool],
) -> Result<HashMap<String, Vec<f64>>, StatsError> {
    let n = data.n_rows();
    let mut evaluated: HashMap<String, Vec<f64>> = HashMap::new();
    let mut numeric_vars: Vec<&Variable> = vec![&formula.response];
    for (v, u) in formula.variables.iter().zip(used) {
        if *u {
            numeric_vars.push(v);
        }
    }
    for v in numeric_vars {
        if let Variable::Expr(e) = v {
            let cols: Vec<(String, &Column)> = v
                .columns()
                .into_iter()
                .map(|c| column(data, &c).map(|cc| (c, cc)))
                .collect::<Result<_, _>>()?;
            for (name, c) in &cols {
                if matches!(c, Column::Str(_)) {
                    return Err(StatsError::Formula(format!(
                        "column `{name}` is text and cannot be used in `{}`",
                        v.label()
                    )));
                }
            }
            let mut vals = vec![f64::NAN; n];
            for (i, out) in vals.iter_mut().enumerate() {
                if missing[i] {
                    continue;
                }
                let lookup = |name: &str| -> f64 {
                    match cols.iter().find(|(c, _)| c == name).map(|x| x.1) {
                        Some(Column::Num(x)) => x[i].unwrap_or(f64::NAN),
                        Some(Column::Bool(x)) => x[i].map_or(f64::NAN, |b| b as u8 as f64),
                        _ => f64::NAN,
                    }
                };
                *out = e.eval(&lookup);
                if out.is_nan() {
                    missing[i] = true;
                }
            }
            evaluated.insert(v.label(), vals);
        }
    }
    Ok(evaluated)
}

/// The response's label and values on the kept rows; it must be numeric and finite.
fn response(
    formula: &Formula,
    data: &Data,
    kept_rows: &[usize],
    evaluated: &HashMap<String, Vec<f64>>,
) -> Result<(String, Vec<f64>), StatsError> {
    let response = formula.response.label();
    let y: Vec<f64> = match &formula.response {
        Variable::Column(c) => match column(data, c)? {
            Column::Num(v) => kept_rows
                .iter()
                .map(|&i| v[i].unwrap_or(f64::NAN))
                .collect(),
            Column::Bool(v) => kept_rows
                .iter()
                .map(|&i| v[i].map_or(f64::NAN, |b| b as u8 as f64))
                .collect(),
            Column::Str(_) => {
                return Err(StatsError::Formula(format!(
                    "the response `{c}` is text; it must be numeric"
                )))
            }
        },
        Variable::Expr(_) => kept_rows.iter().map(|&i| evaluated[&response][i]).collect(),
        Variable::Factor { .. } => {
            return Err(StatsError::Formula("the response must be numeric".into()))
        }
    };
    if y.iter().any(|v| v.is_infinite()) {
        return Err(StatsError::NonFinite(format!("response `{response}`")));
    }
    Ok((response, y))
}

/// Each used variable over the kept rows: numbers, or a factor's codes and levels.
fn encode_variables(
    formula: &Formula,
    used: &[bool],
    data: &Data,
    kept_rows: &[usize],
    evaluated: &HashMap<String, Vec<f64>>,
) -> Result<Vec<Option<Encoded>>, StatsError> {
    let n_obs = kept_rows.len();
    let mut encoded: Vec<Option<Encoded>> = vec![None; formula.variables.len()];
    for (vi, v) in formula.variables.iter().enumerate() {
        if !used[vi] {
            continue;
        }
        let enc = match v {
            Variable::Column(c) => match column(data, c)? {
                Column::Num(x) => {
                    Encoded::Numeric(kept_rows.iter().map(|&i| x[i].unwrap_or(0.0)).collect())
                }
                Column::Str(_) => factor_of(column(data, c)?, kept_rows, false),
                Column::Bool(_) => factor_of(column(data, c)?, kept_rows, true),
            },
            Variable::Factor { column: c, .. } => factor_of(column(data, c)?, kept_rows, false),
            Variable::Expr(_) => Encoded::Numeric(
                kept_rows
                    .iter()
                    .map(|&i| evaluated[&v.label()][i])
                    .collect(),
            ),
        };
        if let Encoded::Numeric(x) = &enc {
            if x.iter().any(|v| v.is_infinite()) {
                return Err(StatsError::NonFinite(format!("variable `{}`", v.label())));
            }
        }
        if let Encoded::Factor { levels, .. } = &enc {
            if levels.len() < 2 && n_obs > 0 {
                return Err(StatsError::Formula(format!(
                    "factor `{}` has fewer than 2 levels in the rows used; contrasts need at least 2",
                    v.label()
                )));
            }
        }
        encoded[vi] = Some(enc);
    }
    Ok(encoded)
}

/// R's factor coding rule per (term, variable): true = contrasts, false = indicators.
fn factor_coding(formula: &Formula, encoded: &[Option<Encoded>]) -> Vec<Vec<bool>> {
    let is_factor = |v: usize| matches!(encoded[v], Some(Encoded::Factor { .. }));
    let mut coding: Vec<Vec<bool>> = Vec::with_capacity(formula.terms.len());
    for (ti, t) in formula.terms.iter().enumerate() {
        let mut codes = Vec::with_capacity(t.vars.len());
        for &v in &t.vars {
            if !is_factor(v) {
                codes.push(true);
                continue;
            }
            let rest: Vec<usize> = t.vars.iter().copied().filter(|&w| w != v).collect();
            let contrasts = rest.is_empty()
                || formula.terms[..ti]
                    .iter()
                    .any(|prev| rest.iter().all(|w| prev.vars.contains(w)));
            codes.push(contrasts);
        }
        coding.push(codes);
    }
    if !formula.intercept {
        'outer: for (ti, t) in formula.terms.iter().enumerate() {
            for (k, &v) in t.vars.iter().enumerate() {
                if is_factor(v) {
                    coding[ti][k] = false;
                    break 'outer;
                }
            }
        }
    }
    coding
}

/// The names and values of the model matrix's columns: the intercept, then each term's columns
/// (the product of its variables' sub-columns, first variable fastest).
fn model_columns(
    formula: &Formula,
    encoded: &[Option<Encoded>],
    coding: &[Vec<bool>],
    n_obs: usize,
) -> Result<(Vec<String>, Vec<Vec<f64>>), StatsError> {
    let mut names: Vec<String> = Vec::new();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    if formula.intercept {
        names.push("(Intercept)".into());
        cols.push(vec![1.0; n_obs]);
    }
    for (ti, t) in formula.terms.iter().enumerate() {
        // Sub-columns of each variable: (name, values).
        let mut parts: Vec<Vec<(String, Vec<f64>)>> = Vec::new();
        for (k, &v) in t.vars.iter().enumerate() {
            let label = formula.variables[v].label();
            let Some(enc) = &encoded[v] else {
                return Err(StatsError::Formula(format!(
                    "variable `{label}` not encoded"
                )));
            };
            match enc {
                Encoded::Numeric(x) => parts.push(vec![(label, x.clone())]),
                Encoded::Factor { codes, levels } => {
                    let start = if coding[ti][k] { 1 } else { 0 };
                    let mut sub = Vec::new();
                    for (l, lev) in levels.iter().enumerate().skip(start) {
                        let vals = codes
                            .iter()
                            .map(|&c| if c as usize == l { 1.0 } else { 0.0 })
                            .collect();
                        sub.push((format!("{label}{lev}"), vals));
                    }
                    parts.push(sub);
                }
            }
        }
        // Cartesian product, first variable fastest.
        let mut acc: Vec<(String, Vec<f64>)> = vec![(String::new(), vec![1.0; n_obs])];
        for (k, sub) in parts.iter().enumerate() {
            let mut next = Vec::with_capacity(acc.len() * sub.len());
            for (sname, svals) in sub {
                for (aname, avals) in &acc {
                    let name = if k == 0 {
                        sname.clone()
                    } else {
                        format!("{aname}:{sname}")
                    };
                    let vals = avals.iter().zip(svals).map(|(a, b)| a * b).collect();
                    next.push((name, vals));
                }
            }
            acc = next;
        }
        for (name, vals) in acc {
            names.push(name);
            cols.push(vals);
        }
    }
    Ok((names, cols))
}

/// The random-intercept grouping factors over the kept rows, in lme4's order (by decreasing
/// number of levels, ties in formula order).
fn random_factors(
    formula: &Formula,
    data: &Data,
    kept_rows: &[usize],
) -> Result<Vec<RandomFactor>, StatsError> {
    let n_obs = kept_rows.len();
    let mut random = Vec::new();
    for r in &formula.random {
        let parts: Vec<&Column> = r
            .columns
            .iter()
            .map(|c| column(data, c))
            .collect::<Result<_, _>>()?;
        let per_col: Vec<Encoded> = parts
            .iter()
            .map(|c| factor_of(c, kept_rows, false))
            .collect();
        // Combined level = tuple of per-column codes; sorted by the tuple, last column slowest
        // (as R's interaction()).
        let mut map: BTreeMap<Vec<u32>, u32> = BTreeMap::new();
        let keys: Vec<Vec<u32>> = (0..n_obs)
            .map(|i| {
                per_col
                    .iter()
                    .rev()
                    .map(|e| match e {
                        Encoded::Factor { codes, .. } => codes[i],
                        Encoded::Numeric(_) => 0,
                    })
                    .collect()
            })
            .collect();
        for k in &keys {
            map.insert(k.clone(), 0);
        }
        let mut level_names = Vec::with_capacity(map.len());
        for (idx, (k, v)) in map.iter_mut().enumerate() {
            *v = idx as u32;
            let label: Vec<String> = k
                .iter()
                .rev()
                .zip(&per_col)
                .map(|(&c, e)| match e {
                    Encoded::Factor { levels, .. } => levels[c as usize].clone(),
                    Encoded::Numeric(_) => String::new(),
                })
                .collect();
            level_names.push(label.join(":"));
        }
        let levels: Vec<u32> = keys.iter().map(|k| map[k]).collect();
        random.push(RandomFactor {
            name: r.name.clone(),
            n_levels: level_names.len(),
            levels,
            level_names,
        });
    }
    // lme4 orders random terms by decreasing number of levels (stable).
    random.sort_by_key(|r| std::cmp::Reverse(r.n_levels));
    Ok(random)
}

#[derive(Debug, Clone)]
enum Encoded {
    Numeric(Vec<f64>),
    Factor {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
}

/// Factor codes over `rows`. `logical_levels`: a plain boolean column gets both levels.
fn factor_of(c: &Column, rows: &[usize], logical_levels: bool) -> Encoded {
    match c {
        Column::Num(x) => {
            let mut vals: Vec<f64> = rows.iter().filter_map(|&i| x[i]).collect();
            vals.sort_by(|a, b| a.total_cmp(b));
            vals.dedup();
            let codes = rows
                .iter()
                .map(|&i| {
                    let v = x[i].unwrap_or(f64::NAN);
                    vals.binary_search_by(|p| p.total_cmp(&v)).unwrap_or(0) as u32
                })
                .collect();
            // Distinct numbers may print alike at 15 digits; R would merge them, we keep them.
            Encoded::Factor {
                codes,
                levels: vals.iter().map(|v| format_r_number(*v)).collect(),
            }
        }
        Column::Str(x) => {
            let mut vals: Vec<&str> = rows.iter().filter_map(|&i| x[i].as_deref()).collect();
            vals.sort_unstable();
            vals.dedup();
            let codes = rows
                .iter()
                .map(|&i| {
                    let v = x[i].as_deref().unwrap_or("");
                    vals.binary_search(&v).unwrap_or(0) as u32
                })
                .collect();
            Encoded::Factor {
                codes,
                levels: vals.iter().map(|s| s.to_string()).collect(),
            }
        }
        Column::Bool(x) => {
            let has = |b: bool| rows.iter().any(|&i| x[i] == Some(b));
            let levels: Vec<bool> = if logical_levels {
                vec![false, true]
            } else {
                [false, true].into_iter().filter(|&b| has(b)).collect()
            };
            let codes = rows
                .iter()
                .map(|&i| {
                    let v = x[i].unwrap_or(false);
                    levels.iter().position(|&l| l == v).unwrap_or(0) as u32
                })
                .collect();
            Encoded::Factor {
                codes,
                levels: levels
                    .iter()
                    .map(|&b| if b { "TRUE".into() } else { "FALSE".into() })
                    .collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formula::parse;

    fn data() -> Data {
        let mut d = Data::new();
        d.push(
            "y",
            Column::Num(vec![Some(1.0), Some(2.0), None, Some(4.0), Some(5.0)]),
        )
        .unwrap();
        d.push(
            "x",
            Column::Num(vec![Some(0.5), Some(1.5), Some(2.0), Some(3.0), Some(-1.0)]),
        )
        .unwrap();
        d.push(
            "g",
            Column::Str(
                ["b", "a", "a", "c", "b"]
                    .iter()
                    .map(|s| Some(s.to_string()))
                    .collect(),
            ),
        )
        .unwrap();
        d.push(
            "w",
            Column::Num(vec![Some(2.0), Some(1.0), Some(1.0), Some(2.0), Some(3.0)]),
        )
        .unwrap();
        d
    }

    #[test]
    fn names_and_drop() {
        let d = data();
        let des = build(&parse("y ~ x*g + C(w)").unwrap(), &d).unwrap();
        assert_eq!(
            des.names,
            [
                "(Intercept)",
                "x",
                "gb",
                "gc",
                "C(w)2",
                "C(w)3",
                "x:gb",
                "x:gc"
            ]
        );
        assert_eq!(des.n_dropped, 1);
        assert_eq!(des.kept_rows, [0, 1, 3, 4]);
        let des = build(&parse("y ~ g - 1").unwrap(), &d).unwrap();
        assert_eq!(des.names, ["ga", "gb", "gc"]);
        let des = build(&parse("y ~ x:g").unwrap(), &d).unwrap();
        assert_eq!(des.names, ["(Intercept)", "x:ga", "x:gb", "x:gc"]);
    }
}
