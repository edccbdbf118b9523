//! Expected versus observed reachability over every ordered pair of pods,
//! printed like the truth tables of the upstream Kubernetes netpol e2e
//! tests: rows are sources, columns destinations, `.` allowed, `X` denied.
//! Pairs of a pod with itself are neither probed nor compared.

use std::fmt::{self, Write};

/// A reachability truth table over pods named `namespace/pod`.
#[derive(Debug, Clone)]
pub struct Reachability {
    pods: Vec<String>,
    expected: Vec<Vec<bool>>,
    observed: Vec<Vec<Option<bool>>>,
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

    pub fn observe(&mut self, from: &str, to: &str, allowed: bool) {
        let (i, j) = (self.index(from), self.index(to));
        self.observed[i][j] = Some(allowed);
    }

    pub fn observed(&self, from: &str, to: &str) -> Option<bool> {
        self.observed[self.index(from)][self.index(to)]
    }

    /// Pairs (not a pod with itself) whose observation differs from the
    /// expectation or is missing: `(from, to, expected, observed)`.
    pub fn mismatches(&self) -> Vec<(String, String, bool, Option<bool>)> {
        let mut wrong = Vec::new();
        for (i, from) in self.pods.iter().enumerate() {
            for (j, to) in self.pods.iter().enumerate() {
                if i != j && self.observed[i][j] != Some(self.expected[i][j]) {
                    wrong.push((
                        from.clone(),
                        to.clone(),
                        self.expected[i][j],
                        self.observed[i][j],
                    ));
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

    fn index(&self, pod: &str) -> usize {
        self.pods
            .iter()
            .position(|p| p == pod)
            .unwrap_or_else(|| panic!("{pod} is not in the reachability table {:?}", self.pods))
    }

    fn table(&self, title: &str, cell: impl Fn(usize, usize) -> &'static str) -> String {
        const CORNER: &str = "from\\to";
        let column = self.pods.iter().map(String::len).max().unwrap_or(1).max(2);
        let label = column.max(CORNER.len());
        let mut out = format!("{title}:\n{CORNER:label$}");
        for to in &self.pods {
            let _ = write!(out, " {to:column$}");
        }
        out.push('\n');
        for (i, from) in self.pods.iter().enumerate() {
            let _ = write!(out, "{from:label$}");
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
    /// cells marked `*`) and a comparison (`X` where they differ).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wrong = self.mismatches().len();
        let total = self.pods.len() * self.pods.len().saturating_sub(1);
        writeln!(
            f,
            "reachability: correct {}, incorrect {wrong}",
            total - wrong
        )?;
        let allowed = |b: bool| if b { "." } else { "X" };
        let differs = |i: usize, j: usize| self.observed[i][j] != Some(self.expected[i][j]);
        f.write_str(&self.table("expected", |i, j| allowed(self.expected[i][j])))?;
        f.write_str(&self.table("observed", |i, j| {
            match (self.observed[i][j], differs(i, j)) {
                (None, _) => "?",
                (Some(true), false) => ".",
                (Some(false), false) => "X",
                (Some(true), true) => ".*",
                (Some(false), true) => "X*",
            }
        }))?;
        f.write_str(&self.table("comparison", |i, j| if differs(i, j) { "X" } else { "." }))
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
