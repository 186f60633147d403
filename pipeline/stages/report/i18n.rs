//! The reports' languages: every word a report shows comes from a catalogue, one TOML file per
//! language in `pipeline/stages/report/templates/lang/` (`en.toml`, `da.toml`), embedded in the
//! binary by `build.rs`, so a third language is a new file and no code. A file
//! `lang/<language>.toml` in `report.templates_dir` replaces or adds a language at run time.
//!
//! A catalogue has the sections `format` (decimal mark, thousands separator, month names and the
//! date pattern), `common` (the heat maps, legends and marks both reports share), `feedback`
//! (the municipalities' pages), `study` (the study report) and `items` (default display names of
//! the instrument's items). Every catalogue must have every key of the English one: a missing
//! key is an error when the catalogue is loaded, never a blank in a report.
//!
//! A text may hold placeholders, `{name}`, which the templates fill with `tr(text, name=...)`:
//! the text is HTML-escaped, a placeholder's value is escaped unless it is markup the template
//! made (a figure with its `data-n`). The templates also get the filters `num` (a figure in the
//! page's number format), `group`, `municipality` and `item` (a display name from `[labels]`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind, HtmlEscape};
use serde_json::Value;

use super::fmt;
use crate::config::LabelsSection;

include!(concat!(env!("OUT_DIR"), "/catalogues.rs"));

/// The language every other catalogue is checked against.
pub const REFERENCE: &str = "en";

/// One language's catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub lang: String,
    /// The whole catalogue, as the templates see it (`t`).
    pub value: Value,
    pub numbers: fmt::NumberFormat,
}

/// The built-in languages.
pub fn builtin_languages() -> Vec<&'static str> {
    BUILTIN.iter().map(|(l, _)| *l).collect()
}

fn builtin(lang: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(l, _)| *l == lang).map(|(_, t)| *t)
}

fn parse(lang: &str, text: &str, origin: &str) -> Result<Value> {
    let v: toml::Value =
        toml::from_str(text).with_context(|| format!("report catalogue {origin} ({lang})"))?;
    Ok(serde_json::to_value(v)?)
}

/// The text of `lang`'s catalogue: `templates_dir/lang/<lang>.toml` when present, else the
/// built-in one.
fn source(lang: &str, dir: Option<&Path>) -> Result<(String, String)> {
    if let Some(p) = dir
        .map(|d| d.join("lang").join(format!("{lang}.toml")))
        .filter(|p| p.is_file())
    {
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read report catalogue {}", p.display()))?;
        return Ok((text, p.display().to_string()));
    }
    match builtin(lang) {
        Some(t) => Ok((t.to_string(), format!("lang/{lang}.toml"))),
        None => bail!(
            "no report catalogue for language {lang:?}: the built-in ones are {}; another \
             language needs lang/{lang}.toml in report.templates_dir",
            builtin_languages().join(", ")
        ),
    }
}

/// The dotted keys of every text (string or list) in `v`.
fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(x, &p, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(v, |v, k| v.get(k))
}

/// Loads the catalogue of `lang` and checks that it has every key of the English one.
pub fn load(lang: &str, dir: Option<&Path>) -> Result<Catalogue> {
    let (text, origin) = source(lang, dir)?;
    let value = parse(lang, &text, &origin)?;
    if lang != REFERENCE {
        let (ref_text, ref_origin) = source(REFERENCE, dir)?;
        let reference = parse(REFERENCE, &ref_text, &ref_origin)?;
        let mut want = vec![];
        keys(&reference, "", &mut want);
        let missing: Vec<&String> = want
            .iter()
            .filter(|k| {
                lookup(&value, k).is_none_or(|v| {
                    std::mem::discriminant(v)
                        != std::mem::discriminant(lookup(&reference, k).unwrap())
                })
            })
            .collect();
        if !missing.is_empty() {
            bail!(
                "report catalogue {origin} lacks {} key(s) of the English one: {}",
                missing.len(),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let text_of = |k: &str| -> Result<String> {
        lookup(&value, k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("report catalogue {origin}: `{k}` must be text"))
    };
    let months: Vec<String> = lookup(&value, "format.months")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if months.len() != 12 {
        bail!("report catalogue {origin}: `format.months` must list the 12 months");
    }
    let numbers = fmt::NumberFormat {
        decimal: text_of("format.decimal")?,
        thousands: text_of("format.thousands")?,
        months,
        date: text_of("format.date")?,
    };
    Ok(Catalogue {
        lang: lang.to_string(),
        value,
        numbers,
    })
}

impl Catalogue {
    /// The text at a dotted key (`study.pooled`); an error names the key.
    pub fn text(&self, key: &str) -> Result<&str> {
        lookup(&self.value, key)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("report catalogue {}: no text `{key}`", self.lang))
    }

    /// The text at `key` with its placeholders filled (plain text, for figures drawn in Rust).
    pub fn fill(&self, key: &str, args: &[(&str, &str)]) -> Result<String> {
        let text = self.text(key)?;
        substitute(text, |name| {
            args.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .ok_or_else(|| anyhow!("report catalogue {}: `{key}` needs {{{name}}}", self.lang))
        })
    }
}

/// `text` with each `{name}` replaced by `value(name)`; literal text goes through `escape`.
fn substitute_with<E>(
    text: &str,
    escape: impl Fn(&str) -> String,
    mut value: impl FnMut(&str) -> std::result::Result<String, E>,
) -> std::result::Result<String, E> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').filter(|&c| {
            c > 0
                && after[..c]
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        });
        match close {
            Some(c) => {
                out.push_str(&escape(&rest[..open]));
                out.push_str(&value(&after[..c])?);
                rest = &after[c + 1..];
            }
            None => {
                out.push_str(&escape(&rest[..=open]));
                rest = after;
            }
        }
    }
    out.push_str(&escape(rest));
    Ok(out)
}

fn substitute(text: &str, value: impl FnMut(&str) -> Result<String>) -> Result<String> {
    substitute_with(text, str::to_string, value)
}

/// The escaping of catalogue text: in text content `&`, `<`, `>`; in an attribute also quotes.
fn escape_text(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn fill_markup(text: &str, kwargs: &Kwargs, attribute: bool) -> Result<JValue, Error> {
    let html = substitute_with(
        text,
        |s| escape_text(s, attribute),
        |name| -> Result<String, Error> {
            let v: JValue = kwargs.get(name).map_err(|_| {
                Error::new(
                    ErrorKind::MissingArgument,
                    format!("the catalogue text {text:?} needs {{{name}}}"),
                )
            })?;
            Ok(if v.is_safe() {
                v.to_string()
            } else if let Some(s) = v.as_str() {
                HtmlEscape(s).to_string()
            } else {
                HtmlEscape(&v.to_string()).to_string()
            })
        },
    )?;
    Ok(JValue::from_safe_string(html))
}

/// A display-name lookup: by the id in the data and by the id as the views write it
/// (underscores as spaces, `fmt::group`).
fn name_table(labels: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for (id, label) in labels {
        m.insert(fmt::group(id), label.clone());
    }
    for (id, label) in labels {
        m.insert(id.clone(), label.clone());
    }
    Arc::new(m)
}

/// Adds `tr`, `tra` and the filters `num`, `group`, `municipality` and `item` to `env`, the
/// environment of pages in `t`'s language.
pub fn install(env: &mut Environment<'static>, t: &Catalogue, labels: &LabelsSection) {
    env.add_function("tr", |text: String, kwargs: Kwargs| {
        fill_markup(&text, &kwargs, false)
    });
    env.add_function("tra", |text: String, kwargs: Kwargs| {
        fill_markup(&text, &kwargs, true)
    });
    let numbers = t.numbers.clone();
    env.add_filter("num", move |v: JValue| -> String {
        numbers.localize(&v.to_string())
    });
    let groups = name_table(&labels.work_groups);
    env.add_filter("group", move |v: String| -> String {
        groups.get(&v).cloned().unwrap_or(v)
    });
    let munis = name_table(&labels.municipalities);
    env.add_filter("municipality", move |v: String| -> String {
        munis.get(&v).cloned().unwrap_or(v)
    });
    let mut items: BTreeMap<String, String> = t
        .value
        .get("items")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    items.extend(labels.items.clone());
    env.add_filter("item", move |v: String| -> String {
        items.get(&v).cloned().unwrap_or_else(|| fmt::group(&v))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_catalogue_is_complete() {
        assert!(builtin_languages().contains(&"en") && builtin_languages().contains(&"da"));
        for lang in builtin_languages() {
            let c = load(lang, None).unwrap_or_else(|e| panic!("{lang}: {e:#}"));
            assert_eq!(c.lang, lang);
        }
    }

    #[test]
    fn a_catalogue_without_a_key_is_refused_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lang")).unwrap();
        let mut text = builtin("da").unwrap().to_string();
        text = text.replace("hubs_heading", "hubs_headline");
        std::fs::write(dir.path().join("lang/xx.toml"), &text).unwrap();
        let e = format!("{:#}", load("xx", Some(dir.path())).unwrap_err());
        assert!(e.contains("feedback.hubs_heading"), "{e}");
        assert!(load("zz", None).is_err());
    }

    #[test]
    fn placeholders_are_filled_and_text_escaped() {
        let s = substitute_with(
            "a < {x} & {y}, {not a key}",
            |s| escape_text(s, false),
            |k| Ok::<_, ()>(format!("[{k}]")),
        )
        .unwrap();
        assert_eq!(s, "a &lt; [x] &amp; [y], {not a key}");
        let c = load("en", None).unwrap();
        assert_eq!(
            c.fill("feedback.units_total", &[("name", "Randers")])
                .unwrap(),
            "Randers in all"
        );
        assert!(c.fill("feedback.units_total", &[]).is_err());
    }
}
