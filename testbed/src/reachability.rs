//! Expected versus observed reachability over every ordered pair of pods,
//! printed like the truth tables of the upstream Kubernetes netpol e2e
//! tests: rows are sources, columns destinations, `.` allowed, `X` denied
//! (dropped), `R` refused. Pairs of a pod with itself are neither probed nor
//! compared.

use std::fmt::{self, Write};

use crate::probes::Delivery;

/// Pod names longer than this are numbered in the column headers, so a
/// table stays readable with names like
/// `network-policy-conformance-gryffindor/harry-potter-0`.
const LONGEST_COLUMN_LABEL: usize = 8;

/// A reachability truth table over pods named `namespace/pod`.
#[derive(Debug, Clone)]
pub struct Reachability {
    pods: Vec<String>,
    expected: Vec<Vec<bool>>,
    observed: Vec<Vec<Option<Delivery>>>,
    /// Whether a denied pair must be a silent drop: a refusal (TCP RST,
    /// ICMP error) where a denial is expected is then a mismatch too.
    silent_denials: bool,
}

/// One pair whose observation differs from the expectation (or is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub from: String,
    pub to: String,
    pub expected_allowed: bool,
    pub observed: Option<Delivery>,
}

impl Reachability {
    /// Every pair expected `default_allowed`, nothing observed yet.
    pub fn new<S: Into<String>>(pods: impl IntoIterator<Item = S>, default_allowed: bool) -> Self {
        let pods: Vec<String> = pods.into_iter().map(Into::into).collect();
        let n = pods.len();
        Self {
            pods,
            expected: vec![vec![default_allowed; n]; n],
            observed: vec![vec![None; n]; n],
            silent_denials: false,
        }
    }

    /// Requires every denied pair to time out rather than be refused, as
    /// the ClusterNetworkPolicy conformance suite does.
    pub fn requiring_silent_denials(self) -> Self {
        Self {
            silent_denials: true,
            ..self
        }
    }

    pub fn pods(&self) -> &[String] {
        &self.pods
    }

    /// The ordered pairs to probe: every pair except a pod with itself.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for from in &self.pods {
            for to in self.pods.iter().filter(|to| *to != from) {
                pairs.push((from.clone(), to.clone()));
            }
        }
        pairs
    }

    pub fn expect(&mut self, from: &str, to: &str, allowed: bool) {
        let (i, j) = (self.index(from), self.index(to));
        self.expected[i][j] = allowed;
    }

    /// Sets every pair whose source and destination match the patterns.
    /// A pattern is `ns/pod` where either part may be `*`, or `*` alone.
    pub fn expect_peer(&mut self, from: &str, to: &str, allowed: bool) {
        for i in 0..self.pods.len() {
            for j in 0..self.pods.len() {
                if matches(from, &self.pods[i]) && matches(to, &self.pods[j]) {
                    self.expected[i][j] = allowed;
                }
            }
        }
    }

    /// Everything that reaches `to`.
    pub fn expect_all_ingress(&mut self, to: &str, allowed: bool) {
        self.expect_peer("*", to, allowed);
    }

    /// Everything that `from` reaches.
    pub fn expect_all_egress(&mut self, from: &str, allowed: bool) {
        self.expect_peer(from, "*", allowed);
    }

    pub fn expected(&self, from: &str, to: &str) -> bool {
        self.expected[self.index(from)][self.index(to)]
    }

    pub fn observe(&mut self, from: &str, to: &str, delivery: Delivery) {
        let (i, j) = (self.index(from), self.index(to));
        self.observed[i][j] = Some(delivery);
    }

    pub fn observed(&self, from: &str, to: &str) -> Option<Delivery> {
        self.observed[self.index(from)][self.index(to)]
    }

    /// Whether the pair was observed as expected.
    pub fn is_correct_at(&self, from: &str, to: &str) -> bool {
        self.cell_correct(self.index(from), self.index(to))
    }

    /// Pairs (not a pod with itself) whose observation differs from the
    /// expectation or is missing.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        let mut wrong = Vec::new();
        for (i, from) in self.pods.iter().enumerate() {
            for (j, to) in self.pods.iter().enumerate() {
                if i != j && !self.cell_correct(i, j) {
                    wrong.push(Mismatch {
                        from: from.clone(),
                        to: to.clone(),
                        expected_allowed: self.expected[i][j],
                        observed: self.observed[i][j],
                    });
                }
            }
        }
        wrong
    }

    pub fn is_correct(&self) -> bool {
        self.mismatches().is_empty()
    }

    /// Panics with the three tables unless every pair is as expected.
    pub fn assert_correct(&self, what: &str) {
        assert!(self.is_correct(), "{what}: reachability differs\n{self}");
    }

    fn cell_correct(&self, i: usize, j: usize) -> bool {
        as_expected(
            self.expected[i][j],
            self.observed[i][j],
            self.silent_denials,
        )
    }

    fn index(&self, pod: &str) -> usize {
        self.pods
            .iter()
            .position(|p| p == pod)
            .unwrap_or_else(|| panic!("{pod} is not in the reachability table {:?}", self.pods))
    }

    /// Column labels: the pod names, or their numbers when names are long.
    fn column_labels(&self) -> Vec<String> {
        if self.pods.iter().all(|p| p.len() <= LONGEST_COLUMN_LABEL) {
            self.pods.clone()
        } else {
            (1..=self.pods.len()).map(|n| n.to_string()).collect()
        }
    }

    fn table(&self, title: &str, cell: impl Fn(usize, usize) -> &'static str) -> String {
        const CORNER: &str = "from\\to";
        let columns = self.column_labels();
        let numbered = columns != self.pods;
        let rows: Vec<String> = self
            .pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                if numbered {
                    format!("{} {pod}", i + 1)
                } else {
                    pod.clone()
                }
            })
            .collect();
        let column = columns.iter().map(String::len).max().unwrap_or(1).max(2);
        let label = rows
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(1)
            .max(CORNER.len());
        let mut out = format!("{title}:\n{CORNER:label$}");
        for to in &columns {
            let _ = write!(out, " {to:column$}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        for (i, row) in rows.iter().enumerate() {
            let _ = write!(out, "{row:label$}");
            for j in 0..self.pods.len() {
                let mark = if i == j { "-" } else { cell(i, j) };
                let _ = write!(out, " {mark:column$}");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Reachability {
    /// A summary line, then the expected and observed tables (mismatching
    /// cells marked `*`), a comparison (`X` where they differ) and the list
    /// of mismatching pairs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wrong = self.mismatches();
        let total = self.pods.len() * self.pods.len().saturating_sub(1);
        write!(
            f,
            "reachability: correct {}, incorrect {}",
            total - wrong.len(),
            wrong.len()
        )?;
        if self.silent_denials {
            f.write_str(" (a denial must be a silent drop)")?;
        }
        f.write_char('\n')?;
        let allowed = |b: bool| if b { "." } else { "X" };
        f.write_str(&self.table("expected", |i, j| allowed(self.expected[i][j])))?;
        f.write_str(&self.table("observed", |i, j| {
            observed_mark(self.observed[i][j], !self.cell_correct(i, j))
        }))?;
        f.write_str(&self.table("comparison", |i, j| {
            if self.cell_correct(i, j) { "." } else { "X" }
        }))?;
        for m in &wrong {
            writeln!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected = if self.expected_allowed {
            "allowed"
        } else {
            "denied"
        };
        let observed = match self.observed {
            None => "not probed",
            Some(Delivery::Delivered) => "delivered",
            Some(Delivery::Dropped) => "dropped",
            Some(Delivery::Refused) => "refused",
        };
        write!(
            f,
            "  {} -> {}: expected {expected}, observed {observed}",
            self.from, self.to
        )
    }
}

/// Whether one probe's outcome (`None`: not probed) is what was expected;
/// with `silent_denials`, a denial must be a drop, not a refusal.
pub fn as_expected(allowed: bool, observed: Option<Delivery>, silent_denials: bool) -> bool {
    match (allowed, observed) {
        (_, None) => false,
        (true, Some(seen)) => seen == Delivery::Delivered,
        (false, Some(Delivery::Delivered)) => false,
        (false, Some(Delivery::Refused)) => !silent_denials,
        (false, Some(Delivery::Dropped)) => true,
    }
}

/// `.` delivered, `X` dropped, `R` refused, `?` not probed; `*` marks a
/// wrong one.
pub(crate) fn observed_mark(seen: Option<Delivery>, wrong: bool) -> &'static str {
    match (seen, wrong) {
        (None, _) => "?",
        (Some(Delivery::Delivered), false) => ".",
        (Some(Delivery::Dropped), false) => "X",
        (Some(Delivery::Refused), false) => "R",
        (Some(Delivery::Delivered), true) => ".*",
        (Some(Delivery::Dropped), true) => "X*",
        (Some(Delivery::Refused), true) => "R*",
    }
}

fn matches(pattern: &str, pod: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (pattern_ns, pattern_pod) = pattern.split_once('/').unwrap_or((pattern, "*"));
    let (ns, name) = pod.split_once('/').unwrap_or(("", pod));
    (pattern_ns == "*" || pattern_ns == ns) && (pattern_pod == "*" || pattern_pod == name)
}

#[cfg(test)]
mod tests;
