//! What machine a result came from: CPU, instruction sets used, caches, memory, OS, frequency
//! governor, hypervisor, toolchain and ternbench's own commit. `ternbench sysinfo` prints it;
//! every run records it beside its results.

use serde::Serialize;

/// One cache level as Linux reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Cache {
    pub level: u32,
    /// "Data", "Instruction" or "Unified".
    pub kind: String,
    pub bytes: u64,
    /// How many logical CPUs share one instance.
    pub shared_by: usize,
}

/// A compute backend, present or not, and why.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    pub name: String,
    pub available: bool,
    /// The device when available, the reason otherwise.
    pub detail: String,
}

/// Every backend ternbench knows, with what this machine and build offer.
pub fn backends(cpu: &str) -> Vec<BackendStatus> {
    vec![
        BackendStatus {
            name: "cpu".into(),
            available: true,
            detail: cpu.to_string(),
        },
        BackendStatus {
            name: "vulkan".into(),
            available: false,
            detail: "not built: the Vulkan backend (ash) is the next roadmap item".into(),
        },
        BackendStatus {
            name: "hexagon".into(),
            available: false,
            detail: "not built: the Hexagon backend (FastRPC via libloading) is on the roadmap"
                .into(),
        },
    ]
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    /// The machine's host name, which tells machines with the same CPU apart in reports.
    pub hostname: Option<String>,
    pub cpu: String,
    pub arch: String,
    /// Instruction sets the kernels can use here (`avx2`, `avx512vnni`, ...), best last.
    pub isa: Vec<String>,
    pub physical_cores: Option<usize>,
    pub logical_cpus: usize,
    pub caches: Vec<Cache>,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
    /// cpufreq governor of CPU 0, if the OS exposes it.
    pub governor: Option<String>,
    /// The hypervisor, if the CPU reports running under one.
    pub hypervisor: Option<String>,
    pub rustc: String,
    pub git_commit: String,
    pub git_dirty: bool,
    /// "release" or "debug": debug timings are not comparable.
    pub build_profile: String,
    pub ternbench_version: String,
    pub backends: Vec<BackendStatus>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// The CPU list format of `shared_cpu_list` ("0-3,8"): how many CPUs it names.
fn count_cpus(list: &str) -> usize {
    list.split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?),
            None => part.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

fn caches() -> Vec<Cache> {
    (0..8)
        .map_while(|i| {
            let base = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            Some(Cache {
                level: read(&format!("{base}/level"))?.parse().ok()?,
                kind: read(&format!("{base}/type"))?,
                bytes: parse_size(&read(&format!("{base}/size"))?)?,
                shared_by: read(&format!("{base}/shared_cpu_list")).map_or(1, |l| count_cpus(&l)),
            })
        })
        .collect()
}

fn hypervisor() -> Option<String> {
    if let Some(t) = read("/sys/hypervisor/type") {
        return Some(t);
    }
    let cpuinfo = read("/proc/cpuinfo")?;
    let flagged = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    if !flagged {
        return None;
    }
    let vendor = read("/sys/class/dmi/id/sys_vendor")
        .or_else(|| read("/sys/devices/virtual/dmi/id/sys_vendor"));
    Some(vendor.unwrap_or_else(|| "unknown (cpuinfo flag 'hypervisor')".into()))
}

impl SystemInfo {
    pub fn detect() -> SystemInfo {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        let cpu = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        SystemInfo {
            hostname: read("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()),
            arch: std::env::consts::ARCH.to_string(),
            isa: kernels::cpu::Isa::ALL
                .iter()
                .filter(|i| i.available())
                .map(|i| i.name().to_string())
                .collect(),
            physical_cores: sysinfo::System::physical_core_count(),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            caches: caches(),
            memory_bytes: sys.total_memory(),
            os: sysinfo::System::long_os_version().unwrap_or_else(|| std::env::consts::OS.into()),
            kernel: sysinfo::System::kernel_version().unwrap_or_default(),
            governor: read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            hypervisor: hypervisor(),
            rustc: env!("TERNBENCH_RUSTC").to_string(),
            git_commit: env!("TERNBENCH_GIT_COMMIT").to_string(),
            git_dirty: env!("TERNBENCH_GIT_DIRTY") == "true",
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            ternbench_version: env!("CARGO_PKG_VERSION").to_string(),
            backends: backends(&cpu),
            cpu,
        }
    }

    /// Conditions that make timings less trustworthy, in words.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.build_profile == "debug" {
            w.push("debug build: timings are not comparable; use --release".into());
        }
        if let Some(h) = &self.hypervisor {
            w.push(format!(
                "running under a hypervisor ({h}): other guests share the hardware"
            ));
        }
        match self.governor.as_deref() {
            Some("performance") => {}
            Some(g) => w.push(format!(
                "cpufreq governor '{g}': frequency scaling moves timings"
            )),
            None => {}
        }
        if self.git_dirty {
            w.push("built from a tree with uncommitted changes".into());
        }
        w
    }

    /// `key: value` lines for the terminal.
    pub fn table(&self) -> String {
        let caches: Vec<String> = self
            .caches
            .iter()
            .map(|c| {
                format!(
                    "L{} {} {} KiB (shared by {})",
                    c.level,
                    c.kind.to_lowercase(),
                    c.bytes / 1024,
                    c.shared_by
                )
            })
            .collect();
        let rows = [
            ("cpu", self.cpu.clone()),
            ("arch", self.arch.clone()),
            ("instruction sets", self.isa.join(", ")),
            (
                "cores / logical CPUs",
                format!(
                    "{} / {}",
                    self.physical_cores.map_or("?".into(), |c| c.to_string()),
                    self.logical_cpus
                ),
            ),
            ("caches", caches.join("; ")),
            (
                "memory",
                format!("{:.1} GiB", self.memory_bytes as f64 / (1u64 << 30) as f64),
            ),
            ("os", self.os.clone()),
            ("kernel", self.kernel.clone()),
            (
                "governor",
                self.governor
                    .clone()
                    .unwrap_or_else(|| "not exposed".into()),
            ),
            (
                "hypervisor",
                self.hypervisor
                    .clone()
                    .unwrap_or_else(|| "none detected".into()),
            ),
            ("rustc", self.rustc.clone()),
            (
                "ternbench",
                format!(
                    "{} ({}{}, {} build)",
                    self.ternbench_version,
                    self.git_commit,
                    if self.git_dirty { ", dirty" } else { "" },
                    self.build_profile
                ),
            ),
        ];
        let mut out: String = rows
            .iter()
            .map(|(k, v)| format!("{k:>21}: {v}\n"))
            .collect();
        for b in &self.backends {
            let state = if b.available { "available" } else { "absent" };
            let key = format!("backend {}", b.name);
            out += &format!("{key:>21}: {state}: {}\n", b.detail);
        }
        out
    }
}
