//! Summary statistics of repeated timings: median, mean, standard deviation and a bootstrap
//! 95% confidence interval of the median (percentile method, fixed seed so reruns agree).

use serde::Serialize;

/// How many bootstrap resamples back each confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub mean: f64,
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    /// 95% bootstrap interval of the median: [low, high].
    pub ci95: [f64; 2],
}

impl Summary {
    /// Summarise samples; `None` for an empty slice or one holding NaN.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let n = samples.len();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n,
            median: median_sorted(&sorted),
            mean,
            stddev: var.sqrt(),
            min: sorted[0],
            max: sorted[n - 1],
            ci95: bootstrap_median_ci(samples),
        })
    }

    /// Coefficient of variation (stddev / mean).
    pub fn cv(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.stddev / self.mean
        }
    }
}

fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Percentile bootstrap of the median, 95%.
fn bootstrap_median_ci(samples: &[f64]) -> [f64; 2] {
    let n = samples.len();
    let mut rng = SplitMix64(0x7e57_b3c4);
    let mut medians: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let mut resample: Vec<f64> = (0..n).map(|_| samples[rng.below(n)]).collect();
            resample.sort_by(f64::total_cmp);
            median_sorted(&resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let at = |q: f64| {
        medians
            [((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round() as usize).min(BOOTSTRAP_RESAMPLES - 1)]
    };
    [at(0.025), at(0.975)]
}

/// SplitMix64: a small, well-mixed deterministic generator for resampling and synthetic data.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is below 2^-40 for the sizes used here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.mean, s.min, s.max),
            (4, 2.5, 2.5, 1.0, 4.0)
        );
        assert!((s.stddev - 1.2909944487358056).abs() < 1e-12);
        assert!(
            s.ci95[0] >= 1.0 && s.ci95[1] <= 4.0 && s.ci95[0] <= s.median && s.median <= s.ci95[1]
        );
    }

    #[test]
    fn constant_samples_have_a_zero_width_interval() {
        let s = Summary::of(&[7.0; 9]).unwrap();
        assert_eq!((s.ci95, s.stddev), ([7.0, 7.0], 0.0));
    }

    #[test]
    fn empty_or_nan_samples_have_no_summary() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn interval_narrows_with_more_samples() {
        let mut rng = SplitMix64(1);
        let few: Vec<f64> = (0..10).map(|_| 100.0 + f64::from(rng.unit())).collect();
        let many: Vec<f64> = (0..1000).map(|_| 100.0 + f64::from(rng.unit())).collect();
        let (a, b) = (Summary::of(&few).unwrap(), Summary::of(&many).unwrap());
        assert!(b.ci95[1] - b.ci95[0] < a.ci95[1] - a.ci95[0]);
    }
}
