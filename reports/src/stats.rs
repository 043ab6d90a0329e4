//! The only statistics the report computes itself: ratios of medians and their intervals.

/// Bootstrap resamples for a ratio interval; enough for stable 2.5/97.5 percentiles.
const RESAMPLES: usize = 2000;

/// Median of `values` (mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// Percentile bootstrap 95% interval of `median(a) / median(b)`, resampling the two
/// independent sample sets separately. Needs at least two samples on each side. The seed is
/// fixed so that rendering the same results twice gives the same report.
pub fn ratio_ci95(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    let mut buf_a = vec![0.0; a.len()];
    let mut buf_b = vec![0.0; b.len()];
    for _ in 0..RESAMPLES {
        for slot in buf_a.iter_mut() {
            *slot = a[rng.below(a.len())];
        }
        for slot in buf_b.iter_mut() {
            *slot = b[rng.below(b.len())];
        }
        if let (Some(ma), Some(mb)) = (median(&buf_a), median(&buf_b)) {
            if mb > 0.0 {
                ratios.push(ma / mb);
            }
        }
    }
    if ratios.len() < RESAMPLES / 2 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

// xorshift64*: a few lines, deterministic, and good enough for resampling indices.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r >> 32) as usize) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratio_interval_contains_point_estimate() {
        let a = [10.0, 10.5, 9.8, 10.2, 10.1];
        let b = [5.0, 5.1, 4.9, 5.05, 4.95];
        let (lo, hi) = ratio_ci95(&a, &b).unwrap();
        let point = median(&a).unwrap() / median(&b).unwrap();
        assert!(lo <= point && point <= hi, "{lo} {point} {hi}");
        assert!(lo > 1.8 && hi < 2.2);
        assert_eq!(ratio_ci95(&a[..1], &b), None);
    }
}
