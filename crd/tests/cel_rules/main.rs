//! Every CEL rule in the generated CRDs, evaluated as the API server would (Kubernetes' CEL
//! libraries, `self` bound to each value the rule sits on) against objects that must pass
//! and objects that must fail.
//!
//! The rules are found by walking the generated schemas, so a rule added later without a
//! passing and a failing case here makes this test fail and name it.

mod cases;
mod kubernetes_cel;
mod sites;
#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use kube_cel::cel::{Context, Program};

use cases::{Case, Expect};
use kubernetes_cel::{evaluate, kubernetes_context};
use sites::{RuleSite, rule_sites, values_at};
use support::{KindSchema, kind_schemas};

/// One kind's schema and its rules, compiled.
struct KindRules {
    schema: KindSchema,
    rules: Vec<(RuleSite, Program)>,
}

fn kind_rules() -> BTreeMap<String, KindRules> {
    let compile = |site: RuleSite| {
        let program = Program::compile(&site.rule).unwrap_or_else(|e| panic!("{site:?}: {e}"));
        (site, program)
    };
    kind_schemas()
        .into_iter()
        .map(|(kind, schema)| {
            let rules = rule_sites(&kind, &schema.schema)
                .into_iter()
                .map(compile)
                .collect();
            (kind, KindRules { schema, rules })
        })
        .collect()
}

/// One rule that did not pass on one value.
struct Failure<'a> {
    site: &'a RuleSite,
    path: String,
    error: Option<String>,
}

/// What the cases showed about the rules: where a rule ran and passed, where it failed.
#[derive(Default)]
struct Evidence {
    passed: BTreeSet<RuleSite>,
    rejected: BTreeSet<RuleSite>,
    wrong: Vec<String>,
}

impl Evidence {
    fn record(&mut self, case: &Case, kind: &KindRules, context: &Context) {
        let object = kind.schema.object(&case.kind, &case.spec);
        let mut ran = Vec::new();
        let mut failures = Vec::new();
        for (site, program) in &kind.rules {
            for (path, value) in values_at(&object, &site.path) {
                ran.push(site);
                match evaluate(program, context, value) {
                    Ok(true) => {}
                    Ok(false) => failures.push(Failure {
                        site,
                        path,
                        error: None,
                    }),
                    Err(error) => failures.push(Failure {
                        site,
                        path,
                        error: Some(error),
                    }),
                }
            }
        }
        match (&case.expect, failures.as_slice()) {
            (Expect::Valid, []) => self.passed.extend(ran.into_iter().cloned()),
            (Expect::Invalid { message, path }, [only])
                if only.error.is_none() && only.site.message == *message && only.path == *path =>
            {
                self.rejected.insert(only.site.clone());
            }
            (expected, _) => {
                let got: Vec<String> = failures
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {} {}",
                            f.path,
                            f.site.message,
                            f.error.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                self.wrong.push(format!(
                    "{} {:?}: expected {expected:?}, got {got:?}",
                    case.kind, case.about
                ));
            }
        }
    }

    fn untested<'a>(&self, sites: impl Iterator<Item = &'a RuleSite>) -> Vec<String> {
        sites
            .filter_map(|site| {
                let missing = match (self.passed.contains(site), self.rejected.contains(site)) {
                    (true, true) => return None,
                    (false, false) => "no passing and no failing case",
                    (false, true) => "no passing case",
                    (true, false) => "no failing case",
                };
                Some(format!(
                    "{} {} `{}`: {missing}",
                    site.kind, site.path, site.rule
                ))
            })
            .collect()
    }
}

#[test]
fn every_cel_rule_passes_its_valid_cases_and_rejects_its_invalid_ones() {
    let kinds = kind_rules();
    let context = kubernetes_context();
    let mut evidence = Evidence::default();
    for case in cases::all() {
        evidence.record(&case, &kinds[&case.kind], &context);
    }
    assert!(
        evidence.wrong.is_empty(),
        "cases with unexpected outcomes:\n{}",
        evidence.wrong.join("\n")
    );
    let sites = kinds
        .values()
        .flat_map(|k| k.rules.iter().map(|(site, _)| site));
    let untested = evidence.untested(sites);
    assert!(
        untested.is_empty(),
        "CEL rules without cases:\n{}",
        untested.join("\n")
    );
}
