//! Energy probes: RAPL, hwmon, Android battery and power rails, and external meters, each saying
//! what it measures and whether it is a measurement or an estimate. Arrives with the energy work.
