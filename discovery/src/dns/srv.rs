//! SRV record selection (RFC 2782), kept pure so it is tested without DNS.

/// One SRV record, as the resolver returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred; only the lowest value present is used.
    pub priority: u16,
    /// Relative share within a priority (0 is treated as 1).
    pub weight: u16,
    /// Port of the service on the target.
    pub port: u16,
    /// Target host name (`.` means "not available here").
    pub target: String,
}

impl SrvRecord {
    /// The endpoint weight this record gives: its weight, with 0 raised to 1.
    pub fn endpoint_weight(&self) -> u32 {
        u32::from(self.weight).max(1)
    }

    /// Whether the target is `.` (RFC 2782: the service is decidedly not
    /// available at this domain).
    pub fn is_unavailable(&self) -> bool {
        self.target.is_empty() || self.target == "."
    }
}

/// The records to use: those of the lowest priority value, without `.`
/// targets and without records whose port is 0. Order is kept.
pub fn select_srv(records: &[SrvRecord]) -> Vec<&SrvRecord> {
    let usable = || {
        records
            .iter()
            .filter(|r| !r.is_unavailable() && r.port != 0)
    };
    let Some(best) = usable().map(|r| r.priority).min() else {
        return Vec::new();
    };
    usable().filter(|r| r.priority == best).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.to_string(),
        }
    }

    #[test]
    fn only_the_lowest_priority_group_is_used() {
        let rs = vec![
            rec(10, 5, 80, "b."),
            rec(0, 1, 80, "a."),
            rec(0, 3, 81, "c."),
            rec(20, 1, 80, "d."),
        ];
        let sel: Vec<&str> = select_srv(&rs).iter().map(|r| r.target.as_str()).collect();
        assert_eq!(sel, vec!["a.", "c."]);
    }

    #[test]
    fn dot_targets_and_port_zero_are_skipped() {
        let rs = vec![rec(0, 1, 80, "."), rec(1, 1, 0, "x."), rec(2, 1, 80, "y.")];
        let sel = select_srv(&rs);
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].target, "y.");
        assert!(select_srv(&[rec(0, 1, 80, ".")]).is_empty());
        assert!(select_srv(&[]).is_empty());
    }

    #[test]
    fn weight_zero_becomes_one() {
        assert_eq!(rec(0, 0, 80, "a.").endpoint_weight(), 1);
        assert_eq!(rec(0, 65535, 80, "a.").endpoint_weight(), 65535);
    }
}
