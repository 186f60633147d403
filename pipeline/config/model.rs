//! `[model]`: the settings of the three hypotheses' models, the multiplicity correction and the
//! meta-analysis; the enums they take, and what a left-out setting means.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Two-sided tests at this level; intervals at 1 − alpha (in (0, 0.5)).
    pub alpha: f64,
    pub correction: Correction,
    pub h1: HypothesisSpec,
    pub h2: HypothesisSpec,
    pub h3: HypothesisSpec,
    pub meta: MetaSpec,
    /// A per-municipality model is fitted only with at least this many clusters (H1: values of
    /// its cluster column; H2, H3: units); otherwise it is skipped with a warning.
    #[serde(default = "default_min_clusters")]
    pub min_clusters: u32,
    /// H1 corrected for measurement error (model `h1_corrected`): not corrected in a scope
    /// whose reliability λ of case RCap is below this floor (the naive estimate only).
    #[serde(default = "default_h1_reliability_floor")]
    pub h1_reliability_floor: f64,
    /// Replications of the lead-unit cluster bootstrap of the corrected H1 estimate.
    #[serde(default = "default_h1_bootstrap")]
    pub h1_bootstrap: u32,
    /// Seed of that bootstrap (the same seed gives the same bytes).
    #[serde(default = "default_h1_bootstrap_seed")]
    pub h1_bootstrap_seed: u64,
}

fn default_min_clusters() -> u32 {
    5
}

fn default_h1_reliability_floor() -> f64 {
    0.3
}

fn default_h1_bootstrap() -> u32 {
    999
}

fn default_h1_bootstrap_seed() -> u64 {
    20261123
}

// The model settings left out of a hypothesis are `None` (so that the section's canonical JSON,
// which the fingerprints and the config hash cover, is what was written); what a left-out
// setting means is decided here, by the accessors of `HypothesisSpec`, not in the stages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HypothesisSpec {
    pub primary_term: String,
    pub direction: Direction,
    /// Standard errors for OLS models (default: `cr2` with a `cluster`, else `classical`).
    #[serde(default)]
    pub vcov: Option<Vcov>,
    /// Cluster column for cr1 and cr2.
    #[serde(default)]
    pub cluster: Option<String>,
    /// REML or ML for mixed models (default: REML).
    #[serde(default)]
    pub method: Option<Method>,
    /// H3 only: how the waves are linked (default: `panel`).
    #[serde(default)]
    pub design: Option<Linkage>,
}

impl HypothesisSpec {
    /// The standard errors: as set, else CR2 (with Satterthwaite df) when a cluster column is
    /// set, else classical.
    pub fn vcov(&self) -> Vcov {
        self.vcov.unwrap_or(if self.cluster.is_some() {
            Vcov::Cr2
        } else {
            Vcov::Classical
        })
    }

    /// The estimation method of mixed models: as set, else REML.
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Reml)
    }

    /// How H3's waves are linked: as set, else a panel.
    pub fn design(&self) -> Linkage {
        self.design.unwrap_or(Linkage::Panel)
    }
}

choice! {
    /// `model.correction`: the multiplicity correction of the three primary p-values.
    pub enum Correction {
        Holm = "holm",
        Bonferroni = "bonferroni",
        None = "none",
    }
}

choice! {
    /// `model.hN.direction`: the sign the hypothesis predicts.
    pub enum Direction {
        Positive = "positive",
        Negative = "negative",
    }
}

choice! {
    /// `model.hN.vcov`: standard errors of OLS models.
    pub enum Vcov {
        Classical = "classical",
        Hc0 = "hc0",
        Hc1 = "hc1",
        Hc2 = "hc2",
        Hc3 = "hc3",
        Cr1 = "cr1",
        Cr2 = "cr2",
    }
}

impl From<Vcov> for crate::stats::ols::VcovType {
    fn from(v: Vcov) -> Self {
        use crate::stats::ols::VcovType as V;
        match v {
            Vcov::Classical => V::Classical,
            Vcov::Hc0 => V::Hc0,
            Vcov::Hc1 => V::Hc1,
            Vcov::Hc2 => V::Hc2,
            Vcov::Hc3 => V::Hc3,
            Vcov::Cr1 => V::Cr1,
            Vcov::Cr2 => V::Cr2,
        }
    }
}

choice! {
    /// `model.hN.method`: the estimation method of mixed models.
    pub enum Method {
        Reml = "reml",
        Ml = "ml",
    }
}

impl From<Method> for crate::stats::fit::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Reml => crate::stats::fit::Method::Reml,
            Method::Ml => crate::stats::fit::Method::Ml,
        }
    }
}

choice! {
    /// `model.h3.design`: a panel (respondents followed across waves) or repeated cross-sections
    /// (anonymous waves: no respondent term, no paired test).
    pub enum Linkage {
        Panel = "panel",
        CrossSection = "cross_section",
    }
}

choice! {
    /// `model.meta.methods`: how the meta-analysis estimates the between-municipality variance.
    pub enum MetaMethod {
        Reml = "reml",
        Dl = "dl",
        Fe = "fe",
    }
}

choice! {
    /// `model.meta.test`: inference on the pooled effect of the random-effects meta-analysis.
    /// `knha` is Hartung–Knapp–Sidik–Jonkman (t on k − 1 df, metafor's `test = "knha"`, not
    /// truncated); `adhoc` the same with the scale factor truncated at 1 (metafor's `test =
    /// "adhoc"`); `z` the normal test and intervals.
    pub enum MetaTest {
        Knha = "knha",
        Adhoc = "adhoc",
        Z = "z",
    }
}

impl From<MetaTest> for crate::stats::meta::MetaTest {
    fn from(t: MetaTest) -> Self {
        use crate::stats::meta::MetaTest as T;
        match t {
            MetaTest::Knha => T::Knha,
            MetaTest::Adhoc => T::Adhoc,
            MetaTest::Z => T::Z,
        }
    }
}

fn default_meta_test() -> MetaTest {
    MetaTest::Knha
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetaSpec {
    pub methods: Vec<MetaMethod>,
    /// Inference on the pooled effect (default `knha`).
    #[serde(default = "default_meta_test")]
    pub test: MetaTest,
}

impl Default for ModelSection {
    fn default() -> Self {
        let h = |term: &str| HypothesisSpec {
            primary_term: term.into(),
            direction: Direction::Positive,
            vcov: None,
            cluster: None,
            method: None,
            design: None,
        };
        ModelSection {
            alpha: 0.05,
            correction: Correction::Holm,
            h1: HypothesisSpec {
                vcov: Some(Vcov::Cr2),
                cluster: Some("lead_unit_id".into()),
                ..h("case_rcap")
            },
            h2: HypothesisSpec {
                method: Some(Method::Reml),
                ..h("srm_unit")
            },
            h3: HypothesisSpec {
                method: Some(Method::Reml),
                design: Some(Linkage::Panel),
                ..h("post:intervention")
            },
            meta: MetaSpec {
                methods: vec![MetaMethod::Reml, MetaMethod::Dl],
                test: default_meta_test(),
            },
            min_clusters: default_min_clusters(),
            h1_reliability_floor: default_h1_reliability_floor(),
            h1_bootstrap: default_h1_bootstrap(),
            h1_bootstrap_seed: default_h1_bootstrap_seed(),
        }
    }
}

impl ModelSection {
    /// Checks what serde cannot: alpha's range, cr1's cluster column, the clusters a model needs.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let m = self;
        if !(m.alpha > 0.0 && m.alpha < 0.5) {
            return Err(invalid("model.alpha", "must be in (0, 0.5)"));
        }
        for (name, h) in [("h1", &m.h1), ("h2", &m.h2), ("h3", &m.h3)] {
            if matches!(h.vcov, Some(Vcov::Cr1 | Vcov::Cr2)) && h.cluster.is_none() {
                return Err(invalid(
                    &format!("model.{name}.cluster"),
                    "cr1 and cr2 standard errors need a cluster column",
                ));
            }
        }
        if !(m.h1_reliability_floor > 0.0 && m.h1_reliability_floor <= 1.0) {
            return Err(invalid("model.h1_reliability_floor", "must be in (0, 1]"));
        }
        if m.h1_bootstrap < 2 {
            return Err(invalid(
                "model.h1_bootstrap",
                "needs at least 2 bootstrap replications",
            ));
        }
        if m.min_clusters < 2 {
            return Err(invalid(
                "model.min_clusters",
                format!(
                    "is {}, but a model needs at least 2 clusters",
                    m.min_clusters
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MINIMAL: &str = "[study]\nname = \"t\"\ndata_dir = \"d\"\nout_dir = \"o\"\n";

    #[test]
    fn left_out_model_settings_mean_their_defaults() {
        let c = Config::from_toml(&format!(
            "{MINIMAL}[model.h1]\nprimary_term = \"case_rcap\"\ndirection = \"positive\"\n\
             [model.h3]\nprimary_term = \"post\"\ndirection = \"negative\"\n"
        ))
        .unwrap();
        let (h1, h3) = (&c.model.h1, &c.model.h3);
        assert_eq!((h1.vcov, h1.vcov()), (None, Vcov::Classical));
        assert_eq!((h3.method(), h3.design()), (Method::Reml, Linkage::Panel));
        assert_eq!(h3.direction, Direction::Negative);
        let with_cluster = HypothesisSpec {
            cluster: Some("lead_unit_id".into()),
            ..h1.clone()
        };
        assert_eq!(with_cluster.vcov(), Vcov::Cr2);
        // The canonical JSON (what fingerprints cover) spells the values as the TOML does.
        let json = serde_json::to_value(&c.model).unwrap();
        assert_eq!(json["correction"], "holm");
        assert_eq!(json["h3"]["direction"], "negative");
        assert_eq!(json["h3"]["method"], serde_json::Value::Null);
        assert_eq!(json["meta"]["methods"], serde_json::json!(["reml", "dl"]));
    }
}
