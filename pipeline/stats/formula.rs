//! R/lme4-style model formulas, parsed into a typed form: the response, the fixed-effect terms in
//! the order R's `terms()` gives them, the intercept flag, and the random-intercept grouping
//! factors.
//!
//! Supported: `y ~ x1 + x2`; `- 1`, `+ 0`, `0 +` (no intercept) and `+ 1`; `C(g)`, `factor(g)`,
//! `as.factor(g)` (factors); `a:b`, `a*b` (= `a + b + a:b`), `a/b` (= `a + a:b`), `(a + b)^2`,
//! parenthesised sub-formulas and `- term`; `I(...)` with `+ - * / ^`, numbers, columns and the
//! functions `log exp sqrt abs log2 log10 log1p` inside; `log(x)` (and the same functions) as a
//! bare variable; random intercepts `(1 | g)`, `(1 | a:b)`, nested `(1 | a/b)` (= `(1 | a)` +
//! `(1 | b:a)`, named as lme4 prints them) and crossed `(1 | a) + (1 | b)`.
//!
//! Limits: only random intercepts. A random slope `(x | g)`, `(0 + x | g)`, `||`, deeper nesting
//! `(1 | a/b/c)`, `offset()`, `.`, `%in%` and other R functions are rejected with a
//! [`StatsError::Formula`] that names the position (0-based character offset) of the problem.
//! Term labels follow R's deparser (`I(x^2)`, `I(x + 1)`, `log(x)`, numbers as R prints them).

use crate::types::StatsError;

/// A parsed model formula.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// The formula text as given.
    pub source: String,
    /// Left-hand side: a column or a numeric expression.
    pub response: Variable,
    /// Right-hand-side fixed-effect variables in order of first appearance (R's variable order).
    pub variables: Vec<Variable>,
    /// Fixed-effect terms, ordered as R's `terms()` orders them: by interaction order, then by
    /// first appearance. The intercept is not a term (see `intercept`).
    pub terms: Vec<Term>,
    /// Whether the model has an intercept.
    pub intercept: bool,
    /// Random-intercept grouping factors, expanded (`a/b` gives `a` and `b:a`), in formula
    /// order. `design::build` reorders them as lme4 does (decreasing number of levels).
    pub random: Vec<RandomTerm>,
}

/// One fixed-effect term: a set of variables (indices into `Formula::variables`, ascending).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    pub vars: Vec<usize>,
}

/// A random intercept `(1 | g)`: grouping columns (one, or several for an interaction `a:b`).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomTerm {
    /// Name as lme4 prints it: `g`, `b:a`.
    pub name: String,
    /// Columns whose combination defines the groups, in name order.
    pub columns: Vec<String>,
}

/// A variable of the model: a column, a factor made from a column, or a numeric expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Variable {
    /// A data column used as is: numeric columns are covariates, string and boolean columns
    /// factors.
    Column(String),
    /// `C(x)`, `factor(x)` or `as.factor(x)`: the column as a factor; `func` is the wrapper name.
    Factor { func: String, column: String },
    /// `I(...)` or a transformation such as `log(x)`: a numeric expression.
    Expr(Expr),
}

impl Variable {
    /// The label R gives the variable (used in term and column names).
    pub fn label(&self) -> String {
        match self {
            Variable::Column(c) => r_name(c),
            Variable::Factor { func, column } => format!("{func}({})", r_name(column)),
            Variable::Expr(e) => e.deparse(),
        }
    }

    /// Data columns this variable reads.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Variable::Column(c) => vec![c.clone()],
            Variable::Factor { column, .. } => vec![column.clone()],
            Variable::Expr(e) => {
                let mut out = Vec::new();
                e.collect_columns(&mut out);
                out
            }
        }
    }
}

/// Binary arithmetic operators allowed inside `I()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Numeric expression (inside `I()`, or a function call such as `log(x)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column(String),
    Number(f64),
    Neg(Box<Expr>),
    Paren(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// One of the supported functions: `I`, `log`, `exp`, `sqrt`, `abs`, `log2`, `log10`, `log1p`.
    Call(String, Box<Expr>),
}

/// Functions allowed on numeric expressions (besides `I`).
const NUMERIC_FUNCS: &[&str] = &["log", "exp", "sqrt", "abs", "log2", "log10", "log1p"];
const FACTOR_FUNCS: &[&str] = &["C", "factor", "as.factor"];

impl Expr {
    /// R's deparse of the expression: spaces around `+ - * /`, none around `^`.
    pub fn deparse(&self) -> String {
        match self {
            Expr::Column(c) => r_name(c),
            Expr::Number(v) => format_r_number(*v),
            Expr::Neg(e) => format!("-{}", e.deparse()),
            Expr::Paren(e) => format!("({})", e.deparse()),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.deparse(), b.deparse());
                match op {
                    BinOp::Add => format!("{a} + {b}"),
                    BinOp::Sub => format!("{a} - {b}"),
                    BinOp::Mul => format!("{a} * {b}"),
                    BinOp::Div => format!("{a}/{b}"),
                    BinOp::Pow => format!("{a}^{b}"),
                }
            }
            Expr::Call(f, e) => format!("{f}({})", e.deparse()),
        }
    }

    fn collect_columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Column(c) => {
                if !out.contains(c) {
                    out.push(c.clone())
                }
            }
            Expr::Number(_) => {}
            Expr::Neg(e) | Expr::Paren(e) | Expr::Call(_, e) => e.collect_columns(out),
            Expr::Binary(_, a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
        }
    }

    /// Evaluates the expression for one row, given a lookup of column values.
    pub fn eval(&self, col: &dyn Fn(&str) -> f64) -> f64 {
        match self {
            Expr::Column(c) => col(c),
            Expr::Number(v) => *v,
            Expr::Neg(e) => -e.eval(col),
            Expr::Paren(e) => e.eval(col),
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(col), b.eval(col));
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Pow => a.powf(b),
                }
            }
            Expr::Call(f, e) => {
                let v = e.eval(col);
                match f.as_str() {
                    "log" => v.ln(),
                    "exp" => v.exp(),
                    "sqrt" => v.sqrt(),
                    "abs" => v.abs(),
                    "log2" => v.log2(),
                    "log10" => v.log10(),
                    "log1p" => v.ln_1p(),
                    _ => v, // "I"
                }
            }
        }
    }
}

/// Quotes a non-syntactic R name with backticks, as R's deparser does.
fn r_name(name: &str) -> String {
    let mut chars = name.chars();
    let syntactic = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => true,
        Some('.') => !name[1..].starts_with(|c: char| c.is_ascii_digit()),
        _ => false,
    } && name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    if syntactic {
        name.to_string()
    } else {
        format!("`{name}`")
    }
}

/// Formats a number the way R's `as.character()`/`deparse()` do: up to 15 significant digits,
/// fixed notation unless scientific notation is shorter (`1e+05`, `2`, `0.5`, `1e-10`).
pub fn format_r_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    // Shortest representation with at most 15 significant digits.
    let mut digits = 15;
    for d in 1..=15 {
        let s = format!("{:.*e}", d - 1, v);
        if s.parse::<f64>().ok() == Some(format!("{:.14e}", v).parse::<f64>().unwrap_or(v)) {
            digits = d;
            break;
        }
    }
    let sci = format!("{:.*e}", digits - 1, v);
    // Rust gives "1.5e5" / "1e-10"; R wants "1.5e+05" / "1e-10".
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sci_r = format!("{mant}e{}{:02}", if exp < 0 { "-" } else { "+" }, exp.abs());
    // Fixed notation with the same significant digits.
    let decimals = (digits as i32 - 1 - exp).max(0) as usize;
    let fixed = format!("{:.*}", decimals, v);
    if fixed.len() <= sci_r.len() {
        fixed
    } else {
        sci_r
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer and Pratt parser into a generic syntax tree.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn err_at(src: &str, pos: usize, msg: &str) -> StatsError {
    StatsError::Formula(format!("{msg} at position {pos} in `{src}`"))
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, StatsError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut s = String::new();
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                s.push(chars[i]);
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    s.push('e');
                    s.extend(&chars[i + 1..j]);
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        s.push(chars[i]);
                        i += 1;
                    }
                }
            }
            if i < chars.len() && chars[i] == 'L' {
                i += 1; // R integer literal
            }
            let v: f64 = s
                .parse()
                .map_err(|_| err_at(src, start, &format!("bad number `{s}`")))?;
            out.push((Tok::Num(v), start));
            continue;
        }
        if c.is_alphabetic() || c == '.' || c == '_' {
            let mut s = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                s.push(chars[i]);
                i += 1;
            }
            out.push((Tok::Ident(s), start));
            continue;
        }
        if c == '`' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '`' {
                s.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(err_at(src, start, "unterminated backquoted name"));
            }
            i += 1;
            out.push((Tok::Ident(s), start));
            continue;
        }
        let op: &'static str = match c {
            '~' => "~",
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            ':' => ":",
            '^' => "^",
            '|' => {
                if chars.get(i + 1) == Some(&'|') {
                    i += 1;
                    "||"
                } else {
                    "|"
                }
            }
            '(' => {
                out.push((Tok::LParen, start));
                i += 1;
                continue;
            }
            ')' => {
                out.push((Tok::RParen, start));
                i += 1;
                continue;
            }
            ',' => {
                out.push((Tok::Comma, start));
                i += 1;
                continue;
            }
            '%' => return Err(err_at(src, start, "`%...%` operators are not supported")),
            _ => return Err(err_at(src, start, &format!("unexpected character `{c}`"))),
        };
        i += 1;
        out.push((Tok::Op(op), start));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Node {
    Ident(String, usize),
    Num(f64, usize),
    Call(String, Vec<Node>, usize),
    Unary(&'static str, Box<Node>, usize),
    Binary(&'static str, Box<Node>, Box<Node>, usize),
    Paren(Box<Node>, usize),
}

impl Node {
    fn pos(&self) -> usize {
        match self {
            Node::Ident(_, p)
            | Node::Num(_, p)
            | Node::Call(_, _, p)
            | Node::Unary(_, _, p)
            | Node::Binary(_, _, _, p)
            | Node::Paren(_, p) => *p,
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    i: usize,
}

/// Binding powers (left, right) of binary operators, following R's precedence.
fn infix_bp(op: &str) -> Option<(u8, u8)> {
    Some(match op {
        "~" => (1, 2),
        "|" | "||" => (3, 4),
        "+" | "-" => (5, 6),
        "*" | "/" => (7, 8),
        ":" => (9, 10),
        "^" => (14, 13), // right associative, above unary minus
        _ => return None,
    })
}
const PREFIX_BP: u8 = 11;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }
    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .map(|t| t.1)
            .unwrap_or(self.src.chars().count())
    }
    fn err(&self, msg: &str) -> StatsError {
        err_at(self.src, self.pos(), msg)
    }

    fn expr(&mut self, min_bp: u8) -> Result<Node, StatsError> {
        let pos = self.pos();
        let mut lhs = match self.toks.get(self.i).cloned() {
            None => return Err(self.err("unexpected end of formula")),
            Some((Tok::Num(v), p)) => {
                self.i += 1;
                Node::Num(v, p)
            }
            Some((Tok::Ident(name), p)) => {
                self.i += 1;
                if self.peek() == Some(&Tok::LParen) {
                    self.i += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Tok::RParen) {
                        loop {
                            args.push(self.expr(0)?);
                            match self.peek() {
                                Some(Tok::Comma) => self.i += 1,
                                Some(Tok::RParen) => break,
                                _ => return Err(self.err("expected `,` or `)`")),
                            }
                        }
                    }
                    self.i += 1; // ')'
                    Node::Call(name, args, p)
                } else {
                    Node::Ident(name, p)
                }
            }
            Some((Tok::LParen, p)) => {
                self.i += 1;
                let inner = self.expr(0)?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.err("expected `)`"));
                }
                self.i += 1;
                Node::Paren(Box::new(inner), p)
            }
            Some((Tok::Op(op @ ("-" | "+")), p)) => {
                self.i += 1;
                let rhs = self.expr(PREFIX_BP)?;
                Node::Unary(op, Box::new(rhs), p)
            }
            Some((Tok::Op("~"), _)) => {
                return Err(err_at(
                    self.src,
                    pos,
                    "a one-sided formula has no response; write `y ~ ...`",
                ))
            }
            Some((t, _)) => return Err(self.err(&format!("unexpected {}", tok_name(&t)))),
        };
        loop {
            let op = match self.peek() {
                None | Some(Tok::RParen) | Some(Tok::Comma) => break,
                Some(Tok::Op(op)) => *op,
                Some(t) => {
                    let t = t.clone();
                    return Err(self.err(&format!("expected an operator before {}", tok_name(&t))));
                }
            };
            let Some((l_bp, r_bp)) = infix_bp(op) else {
                return Err(self.err(&format!("unexpected `{op}`")));
            };
            if l_bp < min_bp {
                break;
            }
            let p = self.pos();
            self.i += 1;
            let rhs = self.expr(r_bp)?;
            lhs = Node::Binary(op, Box::new(lhs), Box::new(rhs), p);
        }
        Ok(lhs)
    }
}

fn tok_name(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("name `{s}`"),
        Tok::Num(v) => format!("number `{}`", format_r_number(*v)),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Formula algebra.

/// Terms as sets of variable indices, in order of appearance, plus intercept adjustments.
#[derive(Default, Clone)]
struct TermList {
    terms: Vec<Vec<usize>>,
}

impl TermList {
    fn push(&mut self, t: Vec<usize>) {
        if !self.terms.contains(&t) {
            self.terms.push(t);
        }
    }
    fn extend(&mut self, other: TermList) {
        for t in other.terms {
            self.push(t);
        }
    }
    fn interact(&self, other: &TermList) -> TermList {
        let mut out = TermList::default();
        for a in &self.terms {
            for b in &other.terms {
                let mut t = a.clone();
                for v in b {
                    if !t.contains(v) {
                        t.push(*v);
                    }
                }
                t.sort_unstable();
                out.push(t);
            }
        }
        out
    }
}

struct Builder<'a> {
    src: &'a str,
    variables: Vec<Variable>,
    random: Vec<RandomTerm>,
}

impl<'a> Builder<'a> {
    fn var_index(&mut self, v: Variable) -> usize {
        if let Some(i) = self.variables.iter().position(|w| w.label() == v.label()) {
            return i;
        }
        self.variables.push(v);
        self.variables.len() - 1
    }

    fn err(&self, pos: usize, msg: &str) -> StatsError {
        err_at(self.src, pos, msg)
    }

    /// Top level of the right-hand side: a chain of `+`/`-` items, where intercept markers and
    /// random terms may appear.
    fn rhs(&mut self, node: &Node, intercept: &mut bool) -> Result<TermList, StatsError> {
        let mut items: Vec<(bool, &Node)> = Vec::new();
        flatten_sum(node, true, &mut items);
        let mut out = TermList::default();
        let mut removed: Vec<Vec<usize>> = Vec::new();
        for (plus, item) in items {
            match item {
                Node::Num(v, p) if *v == 0.0 || *v == 1.0 => {
                    *intercept = (*v == 1.0) == plus;
                    let _ = p;
                }
                Node::Num(_, p) => {
                    return Err(self.err(*p, "only 0 or 1 may appear as a number in a formula"))
                }
                Node::Paren(inner, p) if is_bar(inner) => {
                    if !plus {
                        return Err(self.err(*p, "a random-effect term cannot be subtracted"));
                    }
                    self.random_term(inner)?;
                }
                _ => {
                    let tl = self.terms(item)?;
                    if plus {
                        out.extend(tl);
                    } else {
                        removed.extend(tl.terms);
                    }
                }
            }
        }
        out.terms.retain(|t| !removed.contains(t));
        Ok(out)
    }

    fn terms(&mut self, node: &Node) -> Result<TermList, StatsError> {
        match node {
            Node::Ident(name, p) => {
                if name == "." {
                    return Err(self.err(*p, "`.` (all other columns) is not supported"));
                }
                let i = self.var_index(Variable::Column(name.clone()));
                Ok(TermList {
                    terms: vec![vec![i]],
                })
            }
            Node::Call(f, args, p) => {
                let v = self.call_variable(f, args, *p)?;
                let i = self.var_index(v);
                Ok(TermList {
                    terms: vec![vec![i]],
                })
            }
            Node::Paren(inner, p) => {
                if is_bar(inner) {
                    return Err(self.err(
                        *p,
                        "a random-effect term `( | )` must be added at the top level",
                    ));
                }
                let mut icpt = true;
                let mut items = Vec::new();
                flatten_sum(inner, true, &mut items);
                if items.iter().any(|(_, n)| matches!(n, Node::Num(..))) {
                    return Err(
                        self.err(*p, "intercept terms inside parentheses are not supported")
                    );
                }
                self.rhs(inner, &mut icpt)
            }
            Node::Binary(op, a, b, p) => match *op {
                "+" => {
                    let mut l = self.terms(a)?;
                    l.extend(self.terms(b)?);
                    Ok(l)
                }
                "-" => {
                    let mut l = self.terms(a)?;
                    let r = self.terms(b)?;
                    l.terms.retain(|t| !r.terms.contains(t));
                    Ok(l)
                }
                ":" => {
                    let l = self.terms(a)?;
                    let r = self.terms(b)?;
                    Ok(l.interact(&r))
                }
                "*" => {
                    let mut l = self.terms(a)?;
                    let r = self.terms(b)?;
                    let inter = l.interact(&r);
                    l.extend(r);
                    l.extend(inter);
                    Ok(l)
                }
                "/" => {
                    let mut l = self.terms(a)?;
                    let r = self.terms(b)?;
                    let mut all: Vec<usize> = l.terms.iter().flatten().copied().collect();
                    all.sort_unstable();
                    all.dedup();
                    let inter = TermList { terms: vec![all] }.interact(&r);
                    l.extend(inter);
                    Ok(l)
                }
                "^" => {
                    let base = self.terms(a)?;
                    let k = match &**b {
                        Node::Num(v, _) if *v >= 1.0 && v.fract() == 0.0 => *v as usize,
                        other => {
                            return Err(self.err(
                                other.pos(),
                                "the power of a term must be a positive whole number",
                            ))
                        }
                    };
                    let mut acc = base.clone();
                    for _ in 1..k {
                        let inter = acc.interact(&base);
                        acc.extend(inter);
                    }
                    acc.terms.retain(|t| t.len() <= k);
                    Ok(acc)
                }
                "|" | "||" => Err(self.err(
                    *p,
                    "a random-effect term must be written in parentheses: `(1 | g)`",
                )),
                "~" => Err(self.err(*p, "a formula may contain only one `~`")),
                _ => Err(self.err(*p, &format!("operator `{op}` is not supported here"))),
            },
            Node::Unary(op, _, p) => Err(self.err(
                *p,
                &format!("unary `{op}` is only allowed in `- 1`, `- term` or inside I()"),
            )),
            Node::Num(_, p) => Err(self.err(
                *p,
                "a number may appear only as the intercept (`1`, `0`, `- 1`)",
            )),
        }
    }

    fn call_variable(&self, f: &str, args: &[Node], p: usize) -> Result<Variable, StatsError> {
        if FACTOR_FUNCS.contains(&f) {
            if args.len() != 1 {
                return Err(self.err(
                    p,
                    &format!("{f}() takes one column (contrast arguments are not supported)"),
                ));
            }
            return match &args[0] {
                Node::Ident(c, _) => Ok(Variable::Factor {
                    func: f.to_string(),
                    column: c.clone(),
                }),
                other => Err(self.err(other.pos(), &format!("{f}() takes a column name"))),
            };
        }
        if f == "I" || NUMERIC_FUNCS.contains(&f) {
            if args.len() != 1 {
                return Err(self.err(p, &format!("{f}() takes exactly one argument")));
            }
            let inner = self.expr(&args[0])?;
            return Ok(Variable::Expr(Expr::Call(f.to_string(), Box::new(inner))));
        }
        if f == "offset" {
            return Err(self.err(p, "offset() is not supported"));
        }
        Err(self.err(p, &format!("unknown function `{f}()`")))
    }

    fn expr(&self, node: &Node) -> Result<Expr, StatsError> {
        Ok(match node {
            Node::Ident(c, _) => Expr::Column(c.clone()),
            Node::Num(v, _) => Expr::Number(*v),
            Node::Paren(inner, _) => Expr::Paren(Box::new(self.expr(inner)?)),
            Node::Unary("-", e, _) => Expr::Neg(Box::new(self.expr(e)?)),
            Node::Unary(_, e, _) => self.expr(e)?,
            Node::Binary(op, a, b, p) => {
                let op = match *op {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    "/" => BinOp::Div,
                    "^" => BinOp::Pow,
                    other => {
                        return Err(self.err(
                            *p,
                            &format!("operator `{other}` is not supported inside I()"),
                        ))
                    }
                };
                Expr::Binary(op, Box::new(self.expr(a)?), Box::new(self.expr(b)?))
            }
            Node::Call(f, args, p) => {
                if (f == "I" || NUMERIC_FUNCS.contains(&f.as_str())) && args.len() == 1 {
                    Expr::Call(f.clone(), Box::new(self.expr(&args[0])?))
                } else {
                    return Err(self.err(
                        *p,
                        &format!("function `{f}()` is not supported in an expression"),
                    ));
                }
            }
        })
    }

    fn random_term(&mut self, bar: &Node) -> Result<(), StatsError> {
        let Node::Binary(op, lhs, rhs, p) = bar else {
            return Err(self.err(bar.pos(), "expected `(1 | group)`"));
        };
        if *op == "||" {
            return Err(self.err(
                *p,
                "`||` (uncorrelated random slopes) is not supported: only random intercepts `(1 | g)`",
            ));
        }
        match &**lhs {
            Node::Num(v, _) if *v == 1.0 => {}
            other => {
                return Err(self.err(
                    other.pos(),
                    "only random intercepts `(1 | g)` are supported; random slopes such as `(x | g)` are not",
                ))
            }
        }
        let group_cols = |n: &Node, s: &Self| -> Result<Vec<String>, StatsError> {
            let mut cols = Vec::new();
            collect_colon(n, &mut cols, s)?;
            Ok(cols)
        };
        match &**rhs {
            Node::Binary("/", a, b, p2) => {
                if matches!(&**a, Node::Binary("/", ..)) || matches!(&**b, Node::Binary("/", ..)) {
                    return Err(self.err(
                        *p2,
                        "nesting deeper than `(1 | a/b)` is not supported; write the terms out",
                    ));
                }
                let outer = group_cols(a, self)?;
                let inner = group_cols(b, self)?;
                self.add_random(outer.clone());
                let mut both = inner;
                both.extend(outer);
                self.add_random(both);
            }
            other => {
                let cols = group_cols(other, self)?;
                self.add_random(cols);
            }
        }
        Ok(())
    }

    fn add_random(&mut self, columns: Vec<String>) {
        let name = columns
            .iter()
            .map(|c| r_name(c))
            .collect::<Vec<_>>()
            .join(":");
        if !self.random.iter().any(|r| r.name == name) {
            self.random.push(RandomTerm { name, columns });
        }
    }
}

fn collect_colon(n: &Node, out: &mut Vec<String>, b: &Builder) -> Result<(), StatsError> {
    match n {
        Node::Ident(c, _) => {
            out.push(c.clone());
            Ok(())
        }
        Node::Binary(":", a, c, _) => {
            collect_colon(a, out, b)?;
            collect_colon(c, out, b)
        }
        Node::Paren(inner, _) => collect_colon(inner, out, b),
        other => Err(b.err(
            other.pos(),
            "a grouping factor must be a column, `a:b` or `a/b`",
        )),
    }
}

fn is_bar(n: &Node) -> bool {
    matches!(n, Node::Binary("|" | "||", ..))
}

fn flatten_sum<'n>(node: &'n Node, plus: bool, out: &mut Vec<(bool, &'n Node)>) {
    match node {
        Node::Binary("+", a, b, _) => {
            flatten_sum(a, plus, out);
            flatten_sum(b, plus, out);
        }
        Node::Binary("-", a, b, _) => {
            flatten_sum(a, plus, out);
            flatten_sum(b, !plus, out);
        }
        Node::Unary("-", a, _) => flatten_sum(a, !plus, out),
        Node::Unary("+", a, _) => flatten_sum(a, plus, out),
        other => out.push((plus, other)),
    }
}

/// Parses a formula such as `rcap ~ srm_between + srm_within + C(municipality) + (1 | unit_id)`.
pub fn parse(src: &str) -> Result<Formula, StatsError> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err(StatsError::Formula("empty formula".into()));
    }
    let mut parser = Parser { src, toks, i: 0 };
    let root = parser.expr(0)?;
    if parser.i < parser.toks.len() {
        return Err(parser.err("unexpected `)`"));
    }
    let Node::Binary("~", lhs, rhs, _) = root else {
        return Err(err_at(
            src,
            0,
            "a formula needs `~` between response and predictors",
        ));
    };
    let mut b = Builder {
        src,
        variables: Vec::new(),
        random: Vec::new(),
    };
    let response = match &*lhs {
        Node::Ident(c, _) => Variable::Column(c.clone()),
        Node::Call(f, args, p) => {
            let v = b.call_variable(f, args, *p)?;
            if matches!(v, Variable::Factor { .. }) {
                return Err(b.err(*p, "the response must be numeric"));
            }
            v
        }
        other => {
            return Err(b.err(
                other.pos(),
                "the response must be a column or a function of one (`log(y)`, `I(y/2)`)",
            ))
        }
    };
    let mut intercept = true;
    let tl = b.rhs(&rhs, &mut intercept)?;
    // R orders terms by interaction order, stably.
    let mut terms: Vec<Vec<usize>> = tl.terms;
    terms.sort_by_key(|t| t.len());
    // Variables that only appeared in removed terms stay in `variables` (as in R); harmless.
    Ok(Formula {
        source: src.to_string(),
        response,
        variables: b.variables,
        terms: terms.into_iter().map(|vars| Term { vars }).collect(),
        intercept,
        random: b.random,
    })
}

impl Formula {
    /// Term label as R prints it (`x1`, `C(g)`, `a:b`, `I(x^2)`).
    pub fn term_label(&self, t: &Term) -> String {
        t.vars
            .iter()
            .map(|&v| self.variables[v].label())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Whether the formula has random-effect terms (and so is a mixed model).
    pub fn is_mixed(&self) -> bool {
        !self.random.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(f: &Formula) -> Vec<String> {
        f.terms.iter().map(|t| f.term_label(t)).collect()
    }

    #[test]
    fn basic_terms_and_order() {
        let f = parse("y ~ a*b + c").unwrap();
        assert_eq!(labels(&f), ["a", "b", "c", "a:b"]);
        assert!(f.intercept);
        let f = parse("y ~ x - 1").unwrap();
        assert!(!f.intercept);
        let f = parse("y ~ 0 + x").unwrap();
        assert!(!f.intercept);
        assert_eq!(labels(&f), ["x"]);
        let f = parse("y ~ (a + b + c)^2").unwrap();
        assert_eq!(labels(&f), ["a", "b", "c", "a:b", "a:c", "b:c"]);
        let f = parse("y ~ a/b").unwrap();
        assert_eq!(labels(&f), ["a", "a:b"]);
        let f = parse("y ~ a*b - a:b").unwrap();
        assert_eq!(labels(&f), ["a", "b"]);
        let f = parse("y ~ b:a + a").unwrap();
        assert_eq!(labels(&f), ["a", "b:a"]);
    }

    #[test]
    fn functions_and_deparse() {
        let f = parse("log(y) ~ I(x^2) + I(x+1) + C(wave) + log(z) + I((x - 1)/2)").unwrap();
        assert_eq!(
            labels(&f),
            ["I(x^2)", "I(x + 1)", "C(wave)", "log(z)", "I((x - 1)/2)"]
        );
        assert_eq!(f.response.label(), "log(y)");
    }

    #[test]
    fn random_terms() {
        let f = parse("y ~ x + (1 | g)").unwrap();
        assert_eq!(f.random[0].name, "g");
        let f = parse("y ~ x + (1 | a/b)").unwrap();
        let names: Vec<_> = f.random.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["a", "b:a"]);
        let f = parse("y ~ 1 + (1|a) + (1|b)").unwrap();
        assert_eq!(f.random.len(), 2);
        assert!(f.terms.is_empty());
    }

    #[test]
    fn errors() {
        for bad in [
            "y ~ x + (x | g)",
            "y ~ (0 + x | g)",
            "y ~ x + (1 || g)",
            "y ~ x +",
            "y ~ x + foo(z)",
            "~ x",
            "y ~ x )",
            "y ~ 2",
            "y ~ x + (1 | a/b/c)",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, StatsError::Formula(_)), "{bad}: {e}");
        }
        let e = parse("y ~ x + (x | g)").unwrap_err().to_string();
        assert!(
            e.contains("random slopes") && e.contains("position 9"),
            "{e}"
        );
    }

    #[test]
    fn r_numbers() {
        assert_eq!(format_r_number(2.0), "2");
        assert_eq!(format_r_number(0.5), "0.5");
        assert_eq!(format_r_number(100000.0), "1e+05");
        assert_eq!(format_r_number(123456.0), "123456");
        assert_eq!(format_r_number(1e-10), "1e-10");
        assert_eq!(format_r_number(0.1 + 0.2), "0.3");
        assert_eq!(format_r_number(-3.25), "-3.25");
        assert_eq!(format_r_number(0.0001), "1e-04");
        assert_eq!(format_r_number(0.001), "0.001");
    }
}
