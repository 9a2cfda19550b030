//! Runs compiled rules over an input tree and builds the output tree.
//! Every failing rule is reported (not only the first), so a partner sees
//! all missing fields of a document at once.

use serde_json::Value;

use super::decimal::Decimal;
use super::value::{self, Kind, Node, Scalar};
use super::{AsType, Cond, Explained, Rule, RuleError, Seg, Source, SrcPath, Test};

/// Evaluates `rules` against `root`.
pub(super) fn run(rules: &[Rule], root: &Value, explain: Option<&mut Vec<Explained>>) -> Result<Node, Vec<RuleError>> {
    let mut ctx = Ctx {
        root,
        errors: Vec::new(),
        explain,
    };
    let mut out = Node::obj();
    ctx.rules(rules, root, "", 0, &mut out, "");
    if ctx.errors.is_empty() { Ok(out) } else { Err(ctx.errors) }
}

struct Ctx<'a, 'e> {
    root: &'a Value,
    errors: Vec<RuleError>,
    explain: Option<&'e mut Vec<Explained>>,
}

impl<'a> Ctx<'a, '_> {
    fn explaining(&self) -> bool {
        self.explain.is_some()
    }

    fn fail(&mut self, rule: &Rule, output: String, message: String) {
        self.errors.push(RuleError {
            output,
            rule: rule.at.clone(),
            message,
        });
    }

    fn rules(&mut self, rules: &[Rule], current: &'a Value, cur_in: &str, index: usize, out: &mut Node, out_prefix: &str) {
        for rule in rules {
            let out_path = format!("{out_prefix}/{}", rule.to_text);
            if let Source::Each(path) = &rule.source {
                self.each(rule, path, current, cur_in, out, &out_path);
                continue;
            }
            if let Some(cond) = &rule.when
                && !self.holds(rule, cond, current, &out_path)
            {
                continue;
            }
            let (value, from) = self.value(rule, current, cur_in, index, &out_path);
            let value = match value {
                Some(v) => v,
                None => {
                    if rule.required {
                        let why = match &rule.source {
                            Source::Paths { paths, .. } => {
                                let names: Vec<&str> = paths.iter().map(|p| p.text.as_str()).collect();
                                format!("required, but the input has no {}", names.join(" or "))
                            }
                            _ => "required, but no value was produced".into(),
                        };
                        self.fail(rule, out_path, why);
                    }
                    continue;
                }
            };
            let value = match apply_ops(rule, value).and_then(|v| typed(v, rule.as_type)) {
                Ok(v) => v,
                Err(m) => {
                    self.fail(rule, out_path, format!("{m} (from {from})"));
                    continue;
                }
            };
            if let Some(steps) = self.explain.as_deref_mut() {
                steps.push(Explained {
                    output: out_path.clone(),
                    value: value.text.clone(),
                    rule: rule.at.clone(),
                    from,
                });
            }
            let node = Node::Val { value, cdata: rule.cdata };
            if !set(out, &rule.to, node) {
                self.fail(rule, out_path, "two rules disagree on the shape of the output here".into());
            }
        }
    }

    fn each(&mut self, rule: &Rule, path: &SrcPath, current: &'a Value, cur_in: &str, out: &mut Node, out_path: &str) {
        let list = match self.resolve(path, current) {
            Ok(v) => v.map(value::items).unwrap_or(&[]),
            Err(m) => {
                self.fail(rule, out_path.to_string(), m);
                return;
            }
        };
        let list_in = if self.explaining() { concrete(path, cur_in) } else { String::new() };
        let mut built = Vec::new();
        for (i, item) in list.iter().enumerate() {
            if let Some(cond) = &rule.when
                && !self.holds(rule, cond, item, out_path)
            {
                continue;
            }
            let mut node = Node::obj();
            let (item_in, item_out) = if self.explaining() {
                (format!("{list_in}/{i}"), format!("{out_path}[{}]", built.len() + 1))
            } else {
                (String::new(), String::new())
            };
            self.rules(&rule.children, item, &item_in, i + 1, &mut node, &item_out);
            // `to = "."` made the element a value rather than an object.
            if let Node::Obj(entries) = &mut node
                && entries.len() == 1
                && entries[0].0 == "."
                && let Some((_, v)) = entries.pop()
            {
                node = v;
            }
            built.push(node);
        }
        if built.is_empty() {
            if rule.required {
                self.fail(
                    rule,
                    out_path.to_string(),
                    format!("required, but the input has no elements at {}", path.text),
                );
            }
            return;
        }
        let Some(parent) = parent_mut(out, &rule.to) else {
            self.fail(
                rule,
                out_path.to_string(),
                "two rules disagree on the shape of the output here".into(),
            );
            return;
        };
        let Some(Seg::Key(last)) = rule.to.last() else { return };
        match parent.child_mut(last, || Node::Arr(Vec::new())) {
            Some(Node::Arr(items)) => items.extend(built),
            _ => self.fail(
                rule,
                out_path.to_string(),
                "two rules disagree on the shape of the output here".into(),
            ),
        }
    }

    /// Follows a path from the root (absolute) or the current element.
    fn resolve(&self, path: &SrcPath, current: &'a Value) -> Result<Option<&'a Value>, String> {
        let mut node = if path.absolute { self.root } else { current };
        for seg in &path.segs {
            let next = match seg {
                Seg::Key(k) => value::step(node, k).map_err(|m| format!("{} {m}", path.text))?,
                Seg::Index(i) => value::index(node, *i),
            };
            match next {
                Some(n) => node = n,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    fn scalar_at(&self, path: &SrcPath, current: &'a Value) -> Result<Option<Scalar>, String> {
        match self.resolve(path, current)? {
            None => Ok(None),
            Some(v) => Scalar::from_value(v).map_err(|m| format!("{} {m}", path.text)),
        }
    }

    fn holds(&mut self, rule: &Rule, cond: &Cond, current: &'a Value, out_path: &str) -> bool {
        let v = match self.scalar_at(&cond.path, current) {
            Ok(v) => v.map(|s| s.text),
            Err(m) => {
                self.fail(rule, out_path.to_string(), format!("when: {m}"));
                return false;
            }
        };
        match &cond.test {
            Test::Equals(x) => v.as_deref() == Some(x.as_str()),
            Test::NotEquals(x) => v.as_deref() != Some(x.as_str()),
            Test::OneOf(xs) => v.is_some_and(|v| xs.contains(&v)),
            Test::Exists(want) => v.is_some_and(|v| !v.is_empty()) == *want,
        }
    }

    /// The rule's value before operations, and a description of where it
    /// came from (used in errors and explanations).
    fn value(&mut self, rule: &Rule, current: &'a Value, cur_in: &str, index: usize, out_path: &str) -> (Option<Scalar>, String) {
        let (value, from) = match &rule.source {
            Source::Const(s) => (Some(s.clone()), "constant".to_string()),
            Source::Index => (
                Some(Scalar {
                    text: index.to_string(),
                    kind: Kind::Number,
                }),
                "$index".to_string(),
            ),
            Source::Each(_) => (None, String::new()),
            Source::Paths { paths, join } => {
                let mut parts = Vec::new();
                let mut described = Vec::new();
                for p in paths {
                    match self.scalar_at(p, current) {
                        Ok(Some(s)) => {
                            if self.explaining() {
                                described.push(format!("{} = {:?}", concrete(p, cur_in), s.text));
                            }
                            parts.push(s);
                            if join.is_none() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(m) => {
                            self.fail(rule, out_path.to_string(), m);
                            return (None, String::new());
                        }
                    }
                }
                let from = if self.explaining() {
                    described.join(", ")
                } else {
                    paths.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(", ")
                };
                let value = match join {
                    Some(sep) if !parts.is_empty() => {
                        Some(Scalar::string(parts.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(sep)))
                    }
                    _ => parts.into_iter().next(),
                };
                (value, from)
            }
        };
        match (value, &rule.default) {
            (None, Some(d)) => (
                Some(d.clone()),
                format!("default (input {} absent)", if from.is_empty() { "value" } else { &from }),
            ),
            (v, _) => (v, from),
        }
    }
}

fn apply_ops(rule: &Rule, mut v: Scalar) -> Result<Scalar, String> {
    for op in &rule.ops {
        v = op.apply(v)?;
    }
    Ok(v)
}

/// Gives a scalar its output type.
fn typed(v: Scalar, t: Option<AsType>) -> Result<Scalar, String> {
    let Some(t) = t else { return Ok(v) };
    let text = v.text.trim();
    Ok(match t {
        AsType::String => Scalar::string(v.text),
        AsType::Integer => {
            let n: i64 = text.parse().map_err(|_| format!("{:?} is not an integer", v.text))?;
            Scalar {
                text: n.to_string(),
                kind: Kind::Number,
            }
        }
        AsType::Number => {
            let d = Decimal::parse(text).map_err(|_| format!("{:?} is not a number", v.text))?;
            Scalar {
                text: d.to_string(),
                kind: Kind::Number,
            }
        }
        AsType::Boolean => Scalar {
            text: match text.to_ascii_lowercase().as_str() {
                "true" | "1" => "true".into(),
                "false" | "0" => "false".into(),
                _ => return Err(format!("{:?} is not a boolean (true, false, 1, 0)", v.text)),
            },
            kind: Kind::Boolean,
        },
    })
}

fn concrete(p: &SrcPath, cur_in: &str) -> String {
    if p.absolute {
        p.text.clone()
    } else {
        format!("{cur_in}/{}", p.text)
    }
}

/// The object that holds the last step of `to`, created as needed.
fn parent_mut<'n>(out: &'n mut Node, to: &[Seg]) -> Option<&'n mut Node> {
    let mut node = out;
    for seg in &to[..to.len().saturating_sub(1)] {
        let Seg::Key(k) = seg else { return None };
        node = node.child_mut(k, Node::obj)?;
        if matches!(node, Node::Arr(_)) {
            return None;
        }
    }
    Some(node)
}

fn set(out: &mut Node, to: &[Seg], value: Node) -> bool {
    let Some(Seg::Key(last)) = to.last() else { return false };
    match parent_mut(out, to) {
        Some(parent) => parent.set(last, value),
        None => false,
    }
}
