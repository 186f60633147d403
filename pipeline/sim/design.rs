//! The fixed structure of a simulated study, drawn before any answer: work groups, the population
//! dyad and relevance matrices, blind-spot pairs and hubs (global stream), and per municipality
//! its effect, its units (work group, manager, headcount, unit effect, manager's true SRM, arm)
//! and its dyad effects d(g→h, m) (one stream per municipality).

use rand::seq::SliceRandom;
use rand::Rng;

use super::latent::{normal, stream_rng, weighted_sample};
use super::params::{Model, Params};
use super::streams;

/// One organisational unit with its true values.
#[derive(Debug, Clone)]
pub struct Unit {
    pub id: String,
    /// Index into `Design::groups`.
    pub group: usize,
    pub manager_id: String,
    /// Positions in the unit (each held by one employee at a time).
    pub headcount: u32,
    /// Unit effect b_u on the latent RCap.
    pub effect: f64,
    /// The manager's true SRM S_u (constant over waves).
    pub srm: f64,
    pub intervention: bool,
    /// The unit × wave effects g_ut, indexed by wave − 1 (empty when `sd_unit_wave` is 0).
    pub wave_effects: Vec<f64>,
}

/// One municipality's structure.
#[derive(Debug, Clone)]
pub struct MuniDesign {
    /// 0-based position in the run (ids use index + 1).
    pub index: usize,
    pub name: String,
    pub code: String,
    /// Municipality effect a_m.
    pub effect: f64,
    pub units: Vec<Unit>,
    /// Unit indices per work group (every group has at least one unit).
    pub units_by_group: Vec<Vec<usize>>,
    /// d(g→h, m): `dyad[g][h]`; the diagonal is the within-group effect. Off the diagonal each
    /// row has mean zero.
    pub dyad: Vec<Vec<f64>>,
}

impl MuniDesign {
    pub fn positions(&self) -> u32 {
        self.units.iter().map(|u| u.headcount).sum()
    }
}

/// The whole structure of a run.
#[derive(Debug, Clone)]
pub struct Design {
    pub groups: Vec<String>,
    /// Population dyad effect D(g→h) before the municipal deviation and row centring.
    pub population_dyad: Vec<Vec<f64>>,
    /// Population relevance of h to g on the 1..5 scale (the mean of the relevance answers);
    /// the diagonal is the relevance of one's own group.
    pub relevance: Vec<Vec<f64>>,
    /// Designed blind-spot pairs (g, h): D(g→h) raised, D(h→g) lowered.
    pub blind_spots: Vec<(usize, usize)>,
    /// Groups more relevant to everyone.
    pub hubs: Vec<usize>,
    /// Weight of each group in the draw of a case's groups.
    pub case_weights: Vec<f64>,
    pub munis: Vec<MuniDesign>,
}

impl Design {
    pub fn build(p: &Params, m: &Model) -> Design {
        let g = p.work_groups.len();
        let mut rng = stream_rng(p.seed, streams::GLOBAL);

        // Population dyad effects: a symmetric part shared by g→h and h→g and an asymmetric part.
        let mut sym = vec![vec![0.0; g]; g];
        for (a, b) in (0..g).flat_map(|a| ((a + 1)..g).map(move |b| (a, b))) {
            let s = normal(&mut rng, m.sd_dyad_symmetric);
            sym[a][b] = s;
            sym[b][a] = s;
        }
        let mut pop = vec![vec![0.0; g]; g];
        for a in 0..g {
            for b in 0..g {
                if a != b {
                    pop[a][b] = sym[a][b] + normal(&mut rng, m.sd_dyad_asymmetric);
                }
            }
        }
        let n_pairs = g * (g - 1) / 2;
        let mut blind_spots: Vec<(usize, usize)> = Vec::new();
        while blind_spots.len() < m.blind_spots.min(n_pairs) {
            let a = rng.gen_range(0..g);
            let b = rng.gen_range(0..g);
            if a == b
                || blind_spots
                    .iter()
                    .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
            {
                continue;
            }
            pop[a][b] += m.blind_spot_high;
            pop[b][a] += m.blind_spot_low;
            blind_spots.push((a, b));
        }

        let mut relevance = vec![vec![0.0; g]; g];
        for (a, row) in relevance.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().enumerate() {
                *cell = if a == b {
                    m.relevance_high
                } else {
                    rng.gen_range(m.relevance_low..m.relevance_high)
                };
            }
        }
        let mut order: Vec<usize> = (0..g).collect();
        order.shuffle(&mut rng);
        let mut hubs: Vec<usize> = order.into_iter().take(m.hubs.min(g)).collect();
        hubs.sort_unstable();
        for &h in &hubs {
            for (a, row) in relevance.iter_mut().enumerate() {
                if a != h {
                    row[h] = (row[h] + m.hub_boost).min(4.6);
                }
            }
        }
        let case_weights: Vec<f64> = (0..g)
            .map(|_| rng.gen_range(m.case_weight_low..m.case_weight_high))
            .collect();

        let munis = p
            .municipalities
            .iter()
            .enumerate()
            .map(|(i, muni)| {
                build_municipality(p, m, &pop, i, muni.name.clone(), muni.code.clone())
            })
            .collect();

        Design {
            groups: p.work_groups.clone(),
            population_dyad: pop,
            relevance,
            blind_spots,
            hubs,
            case_weights,
            munis,
        }
    }

    /// Width of the serial part of employee ids: enough for every hire in any municipality.
    pub fn employee_id_width(&self, waves: u32) -> usize {
        let most = self
            .munis
            .iter()
            .map(|d| u64::from(d.positions()) * u64::from(waves))
            .max()
            .unwrap_or(0);
        digits(most).max(4)
    }
}

/// Decimal digits of `n` (1 for 0).
pub fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn build_municipality(
    p: &Params,
    m: &Model,
    pop: &[Vec<f64>],
    index: usize,
    name: String,
    code: String,
) -> MuniDesign {
    let g = p.work_groups.len();
    let mut rng = stream_rng(p.seed, streams::MUNICIPALITY_DESIGN + index as u64);
    let effect = normal(&mut rng, m.sd_municipality);

    // Unit sizes until the target number of positions is reached and every group has a unit.
    let mut sizes: Vec<u32> = Vec::new();
    while sizes.iter().sum::<u32>() < p.employees_per_municipality || sizes.len() < g {
        sizes.push(rng.gen_range(m.unit_size_min..=m.unit_size_max));
    }
    let mut first: Vec<usize> = (0..g).collect();
    first.shuffle(&mut rng);
    let groups: Vec<usize> = (0..sizes.len())
        .map(|i| first.get(i).copied().unwrap_or_else(|| rng.gen_range(0..g)))
        .collect();
    // Ids in work-group order (stable sort keeps the draw order within a group).
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| groups[i]);

    let n_units = sizes.len();
    let n_intervention = if p.no_control {
        n_units
    } else {
        ((n_units as f64) * p.intervention_share).round() as usize
    };
    let mut arm_order: Vec<usize> = (0..n_units).collect();
    arm_order.shuffle(&mut rng);
    let mut intervention = vec![false; n_units];
    for &j in arm_order.iter().take(n_intervention) {
        intervention[j] = true;
    }

    let mut units = Vec::with_capacity(n_units);
    for (j, &src) in order.iter().enumerate() {
        let b = normal(&mut rng, m.sd_unit);
        let s = m.srm_mean + normal(&mut rng, m.sd_srm);
        units.push(Unit {
            id: format!("{code}-U{:03}", j + 1),
            group: groups[src],
            manager_id: format!("M{:03}{:04}", index + 1, j + 1),
            headcount: sizes[src],
            effect: b,
            srm: s,
            intervention: intervention[src],
            wave_effects: Vec::new(),
        });
    }
    // Unit × wave effects from a stream of their own, so that the other draws do not move.
    if p.cluster.sd_unit_wave > 0.0 {
        let mut rng = stream_rng(p.seed, streams::UNIT_WAVE + index as u64);
        for u in &mut units {
            u.wave_effects = (0..p.waves)
                .map(|_| normal(&mut rng, p.cluster.sd_unit_wave))
                .collect();
        }
    }
    let mut units_by_group = vec![Vec::new(); g];
    for (j, u) in units.iter().enumerate() {
        units_by_group[u.group].push(j);
    }

    // d(g→h, m): the population effect plus a municipal deviation, centred per row over h ≠ g;
    // the diagonal is the within-group effect.
    let mut dyad = vec![vec![0.0; g]; g];
    for (a, row) in dyad.iter_mut().enumerate() {
        for (b, cell) in row.iter_mut().enumerate() {
            *cell = if a == b {
                m.within_group_bonus + normal(&mut rng, m.sd_within_group)
            } else {
                pop[a][b] + normal(&mut rng, m.sd_dyad_municipal)
            };
        }
        if g > 1 {
            let off: f64 = row
                .iter()
                .enumerate()
                .filter(|&(b, _)| b != a)
                .map(|(_, v)| v)
                .sum();
            let mean = off / (g - 1) as f64;
            for (b, cell) in row.iter_mut().enumerate() {
                if b != a {
                    *cell -= mean;
                }
            }
        }
    }

    MuniDesign {
        index,
        name,
        code,
        effect,
        units,
        units_by_group,
        dyad,
    }
}

/// Partner-choice weights of group `g`: relevance above the floor, zero for its own group.
pub fn partner_weights(design: &Design, m: &Model, g: usize) -> Vec<f64> {
    design.relevance[g]
        .iter()
        .enumerate()
        .map(|(h, &r)| {
            if h == g {
                0.0
            } else {
                (r - m.relevance_floor).max(0.0)
            }
        })
        .collect()
}

/// Draws the partner groups of one respondent-wave of group `g`: `k` groups, one of them the own
/// group when `within` (and there is room), the rest other groups by relevance; sorted.
pub fn draw_partners<R: Rng>(
    rng: &mut R,
    weights: &[f64],
    g: usize,
    k: usize,
    within: bool,
) -> Vec<usize> {
    let n_groups = weights.len();
    let between = if within { k.saturating_sub(1) } else { k }.min(n_groups.saturating_sub(1));
    let mut t = weighted_sample(rng, weights, between);
    if within {
        t.push(g);
    }
    t.sort_unstable();
    t
}

#[cfg(test)]
mod tests {
    use super::super::params::{municipalities, work_groups, Format, Preset};
    use super::*;

    fn params(n_groups: u32, no_control: bool) -> Params {
        Params {
            seed: 5,
            preset: Preset::Demo,
            format: Format::Csv,
            municipalities: municipalities(Preset::Demo, 3),
            work_groups: work_groups(n_groups),
            employees_per_municipality: 150,
            waves: 3,
            citizens_per_municipality: 10,
            after_wave: 1,
            intervention_share: 0.5,
            no_control,
            effect_h1: 0.5,
            effect_h2: 0.25,
            effect_h3: 0.2,
            cluster: Default::default(),
            effect_sd: super::super::params::EffectSd::default(),
            municipality_effects: vec![],
        }
    }

    #[test]
    fn unit_wave_effects_and_arm_baseline_leave_the_other_draws_alone() {
        let m = Model::default();
        let base = Design::build(&params(8, false), &m);
        let mut p = params(8, false);
        p.cluster.sd_unit_wave = 0.15;
        p.cluster.arm_baseline = 0.3;
        let d = Design::build(&p, &m);
        let mut g = Vec::new();
        for (a, b) in base.munis.iter().zip(&d.munis) {
            assert_eq!(a.effect, b.effect);
            for (u, v) in a.units.iter().zip(&b.units) {
                assert!(u.wave_effects.is_empty());
                assert_eq!(
                    (u.effect, u.srm, u.intervention),
                    (v.effect, v.srm, v.intervention)
                );
                assert_eq!(v.wave_effects.len(), 3);
                g.extend(&v.wave_effects);
                for t in 1..=3u32 {
                    let x = super::super::generate::unit_component(&p, &m, v, t);
                    let x0 = super::super::generate::unit_component(&params(8, false), &m, u, t);
                    let arm = if v.intervention { 0.3 } else { 0.0 };
                    assert!((x - x0 - arm - v.wave_effects[t as usize - 1]).abs() < 1e-12);
                }
            }
        }
        // The effects have the SD asked for (3 waves of each of 35 units: 3 municipalities of about 12).
        let n = g.len() as f64;
        let mean = g.iter().sum::<f64>() / n;
        let sd = (g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!(
            n > 100.0 && (sd - 0.15).abs() < 4.0 * 0.15 / (2.0 * n).sqrt(),
            "{sd} of {n}"
        );
    }

    #[test]
    fn units_cover_every_group_and_reach_the_target() {
        let m = Model::default();
        let d = Design::build(&params(8, false), &m);
        for md in &d.munis {
            assert!(md.positions() >= 150);
            assert!(md.units_by_group.iter().all(|u| !u.is_empty()));
            for u in &md.units {
                assert!((8..=20).contains(&u.headcount));
            }
            let n = md.units.len();
            let k = md.units.iter().filter(|u| u.intervention).count();
            assert_eq!(k, ((n as f64) * 0.5).round() as usize);
            // Ids are unique and in work-group order.
            let groups: Vec<usize> = md.units.iter().map(|u| u.group).collect();
            let mut sorted = groups.clone();
            sorted.sort_unstable();
            assert_eq!(groups, sorted);
        }
        let d = Design::build(&params(8, true), &m);
        assert!(d
            .munis
            .iter()
            .all(|md| md.units.iter().all(|u| u.intervention)));
    }

    #[test]
    fn dyad_rows_are_centred_and_blind_spots_asymmetric() {
        let m = Model::default();
        let d = Design::build(&params(8, false), &m);
        for md in &d.munis {
            for (a, row) in md.dyad.iter().enumerate() {
                let s: f64 = row
                    .iter()
                    .enumerate()
                    .filter(|&(b, _)| b != a)
                    .map(|(_, v)| v)
                    .sum();
                assert!(s.abs() < 1e-12);
            }
        }
        assert_eq!(d.blind_spots.len(), 2);
        for &(a, b) in &d.blind_spots {
            assert_ne!(a, b);
        }
        assert_eq!(d.hubs.len(), 2);
    }

    #[test]
    fn same_seed_same_design() {
        let m = Model::default();
        let a = Design::build(&params(8, false), &m);
        let b = Design::build(&params(8, false), &m);
        assert_eq!(format!("{:?}", a.munis), format!("{:?}", b.munis));
    }

    #[test]
    fn partners_respect_counts() {
        let m = Model::default();
        let d = Design::build(&params(8, false), &m);
        let w = partner_weights(&d, &m, 2);
        let mut rng = stream_rng(1, 1);
        for k in 3..=6 {
            let t = draw_partners(&mut rng, &w, 2, k, true);
            assert_eq!(t.len(), k);
            assert!(t.contains(&2));
            let t = draw_partners(&mut rng, &w, 2, k, false);
            assert_eq!(t.len(), k);
            assert!(!t.contains(&2));
        }
        // Two groups: at most one other group to rate.
        let d2 = Design::build(&params(2, false), &m);
        let w2 = partner_weights(&d2, &m, 0);
        assert_eq!(draw_partners(&mut rng, &w2, 0, 5, false), vec![1]);
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9999), 4);
        assert_eq!(digits(10000), 5);
    }
}
