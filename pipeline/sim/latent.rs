//! The small latent-scale pieces of the simulator: seeded random streams, normal draws,
//! stochastic rounding of a latent value onto the 1..5 answer scale, item non-response, the
//! inverse of the frequency item's value map, and weighted sampling without replacement.
//!
//! Stochastic rounding is what makes the true effects hold on the observed scale: for a latent
//! `x` clamped to [1, 5], the answer `floor(x + U)` with `U ~ U(0, 1)` is `floor(x)` with
//! probability `1 − frac(x)` and `floor(x) + 1` with probability `frac(x)`, so its expectation is
//! exactly `x`. Only the clamping (rare, since latents sit mostly inside [1.5, 4.5]) bends it;
//! the simulator counts clamped latents and reports them in `truth.json`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Lowest answer on the scale.
pub const SCALE_MIN: f64 = 1.0;
/// Highest answer on the scale.
pub const SCALE_MAX: f64 = 5.0;
/// The "don't know" answer code (a missing code in the default instrument).
pub const DONT_KNOW: u8 = 9;

/// A ChaCha8 generator for `seed` on its own `stream`: every part of the simulation draws from a
/// stream of its own (see `streams` in `sim.rs`), so one part never shifts another's numbers.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A normal draw with mean 0 and standard deviation `sd`. Always consumes one draw, so the
/// sequence of later numbers does not depend on whether `sd` is zero.
pub fn normal<R: Rng>(rng: &mut R, sd: f64) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    sd * z
}

/// Clamps `x` to [1, 5] and rounds it stochastically to an answer 1..=5; the flag says whether
/// the latent had to be clamped. E[answer] = clamp(x, 1, 5).
pub fn stochastic_round<R: Rng>(rng: &mut R, x: f64) -> (u8, bool) {
    let clamped = !(SCALE_MIN..=SCALE_MAX).contains(&x);
    let c = x.clamp(SCALE_MIN, SCALE_MAX);
    let u: f64 = rng.gen();
    let v = (c + u).floor().clamp(SCALE_MIN, SCALE_MAX);
    (v as u8, clamped)
}

/// Item non-response on top of an answer: with probability `p_empty` the cell is empty (0 here),
/// with probability `p_dont_know` it is the "don't know" code 9, else the answer. Always consumes
/// one uniform draw.
pub fn respond<R: Rng>(rng: &mut R, answer: u8, p_empty: f64, p_dont_know: f64) -> u8 {
    let u: f64 = rng.gen();
    if u < p_empty {
        0
    } else if u < p_empty + p_dont_know {
        DONT_KNOW
    } else {
        answer
    }
}

/// The frequency item's value map as the default instrument declares it
/// (`instrument.value_maps.frequent`): form code `c` (1..5) scores `FREQUENT_SCORE[c - 1]`. The
/// item is answered on a sufficiency scale whose options the form numbers so that codes 1, 2, 3,
/// 4, 5 score 1, 3, 5, 4, 2.
#[cfg(test)]
pub const FREQUENT_SCORE: [u8; 5] = [1, 3, 5, 4, 2];

/// The inverse map: the form code to write for score `s` is `FREQUENT_CODE[s - 1]`, so that the
/// scored answers follow the latent.
pub const FREQUENT_CODE: [u8; 5] = [1, 5, 2, 4, 3];

/// The form code written for score `s` (1..=5) of the frequency item; other values (the empty
/// cell 0 and "don't know" 9) pass through unchanged.
pub fn frequent_form_code(s: u8) -> u8 {
    match s {
        1..=5 => FREQUENT_CODE[usize::from(s - 1)],
        other => other,
    }
}

/// Draws `k` distinct indices from `0..weights.len()` with probability proportional to the
/// weights, one after another without replacement; indices with weight 0 are never drawn (so
/// fewer than `k` come back when fewer have positive weight). Returned in draw order.
pub fn weighted_sample<R: Rng>(rng: &mut R, weights: &[f64], k: usize) -> Vec<usize> {
    let mut w: Vec<f64> = weights.iter().map(|&x| x.max(0.0)).collect();
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = w.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut target = rng.gen::<f64>() * total;
        let mut pick = None;
        for (i, &wi) in w.iter().enumerate() {
            if wi <= 0.0 {
                continue;
            }
            pick = Some(i);
            if target < wi {
                break;
            }
            target -= wi;
        }
        match pick {
            Some(i) => {
                out.push(i);
                w[i] = 0.0;
            }
            None => break,
        }
    }
    out
}

/// Draws an index with probability proportional to `probs` (which need not sum to one).
pub fn categorical<R: Rng>(rng: &mut R, probs: &[f64]) -> usize {
    let total: f64 = probs.iter().sum();
    let mut target = rng.gen::<f64>() * total;
    for (i, &p) in probs.iter().enumerate() {
        if target < p {
            return i;
        }
        target -= p;
    }
    probs.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stochastic_rounding_is_unbiased_within_monte_carlo_error() {
        let mut rng = stream_rng(7, 1);
        let n = 200_000;
        for &x in &[1.0, 1.2, 1.5, 2.37, 3.0, 3.5, 3.99, 4.5, 4.81, 5.0] {
            let mut sum = 0.0;
            let mut sum2 = 0.0;
            for _ in 0..n {
                let (v, clamped) = stochastic_round(&mut rng, x);
                assert!(!clamped);
                assert!((1..=5).contains(&v));
                let v = f64::from(v);
                sum += v;
                sum2 += v * v;
            }
            let mean = sum / n as f64;
            // The variance of one answer is f(1 - f), f = frac(x); 4.5 standard errors plus a
            // floor for the integer points, where the variance is zero.
            let f = x - x.floor();
            let se = (f * (1.0 - f) / n as f64).sqrt();
            assert!(
                (mean - x).abs() <= 4.5 * se + 1e-12,
                "x = {x}: mean {mean}, se {se}"
            );
            let var = sum2 / n as f64 - mean * mean;
            assert!(
                (var - f * (1.0 - f)).abs() < 0.01,
                "x = {x}: variance {var}"
            );
        }
    }

    #[test]
    fn stochastic_rounding_clamps_outside_the_scale() {
        let mut rng = stream_rng(7, 2);
        for _ in 0..1000 {
            assert_eq!(stochastic_round(&mut rng, -3.0), (1, true));
            assert_eq!(stochastic_round(&mut rng, 5.2), (5, true));
            assert_eq!(stochastic_round(&mut rng, 0.999), (1, true));
        }
    }

    #[test]
    fn frequent_inverse_map_round_trips_with_the_default_instrument() {
        let inst = crate::config::InstrumentSection::default();
        let map = &inst.value_maps["frequent"];
        for s in 1u8..=5 {
            let code = frequent_form_code(s);
            assert_eq!(
                map[&code.to_string()],
                f64::from(s),
                "score {s} via code {code}"
            );
            assert_eq!(FREQUENT_SCORE[usize::from(code - 1)], s);
        }
        // Hand check of the published ordering: code 2 ("much too often") scores 3, so score 3
        // is written as code 2; score 2 ("too often" is 4, "just right" is 2) as code 5.
        assert_eq!(frequent_form_code(3), 2);
        assert_eq!(frequent_form_code(2), 5);
        assert_eq!(frequent_form_code(0), 0);
        assert_eq!(frequent_form_code(DONT_KNOW), DONT_KNOW);
    }

    #[test]
    fn non_response_rates_match() {
        let mut rng = stream_rng(3, 3);
        let n = 100_000;
        let (mut empty, mut dk) = (0, 0);
        for _ in 0..n {
            match respond(&mut rng, 3, 0.03, 0.02) {
                0 => empty += 1,
                DONT_KNOW => dk += 1,
                3 => {}
                other => panic!("unexpected {other}"),
            }
        }
        let (pe, pd) = (empty as f64 / n as f64, dk as f64 / n as f64);
        assert!(
            (pe - 0.03).abs() < 4.0 * (0.03f64 * 0.97 / n as f64).sqrt(),
            "{pe}"
        );
        assert!(
            (pd - 0.02).abs() < 4.0 * (0.02f64 * 0.98 / n as f64).sqrt(),
            "{pd}"
        );
    }

    #[test]
    fn weighted_sample_is_distinct_and_skips_zero_weights() {
        let mut rng = stream_rng(11, 4);
        let w = [1.0, 0.0, 2.0, 3.0, 0.5];
        for _ in 0..1000 {
            let s = weighted_sample(&mut rng, &w, 3);
            assert_eq!(s.len(), 3);
            assert!(!s.contains(&1));
            let mut d = s.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        assert_eq!(weighted_sample(&mut rng, &w, 9).len(), 4);
        // First draws follow the weights: P(3) = 3 / 6.5.
        let n = 60_000;
        let hits = (0..n)
            .filter(|_| weighted_sample(&mut rng, &w, 1)[0] == 3)
            .count();
        let p = 3.0 / 6.5;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!((hits as f64 / n as f64 - p).abs() < 4.5 * se);
    }

    #[test]
    fn same_seed_and_stream_give_the_same_numbers() {
        let mut r1 = stream_rng(42, 9);
        let mut r2 = stream_rng(42, 9);
        let mut r3 = stream_rng(42, 10);
        let x1: Vec<u64> = (0..8).map(|_| r1.gen()).collect();
        let x2: Vec<u64> = (0..8).map(|_| r2.gen()).collect();
        let x3: Vec<u64> = (0..8).map(|_| r3.gen()).collect();
        assert_eq!(x1, x2);
        assert_ne!(x1, x3);
    }
}
