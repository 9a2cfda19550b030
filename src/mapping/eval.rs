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
            if let Source::Each(path) = &rule.source {
                self.each(rule, path, current, cur_in, out, out_prefix);
                continue;
            }
            if let Some(cond) = &rule.when
                && !self.holds(rule, cond, current, out_prefix)
            {
                continue;
            }
            let (value, from) = self.value(rule, current, cur_in, index, out_prefix);
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
                        self.fail(rule, out_path(out_prefix, rule), why);
                    }
                    continue;
                }
            };
            let value = match apply_ops(rule, value).and_then(|v| typed(v, rule.as_type)) {
                Ok(v) => v,
                Err(m) => {
                    self.fail(rule, out_path(out_prefix, rule), format!("{m} (from {})", from.text(rule)));
                    continue;
                }
            };
            if let Some(steps) = self.explain.as_deref_mut() {
                steps.push(Explained {
                    output: out_path(out_prefix, rule),
                    value: value.text.clone(),
                    rule: rule.at.clone(),
                    from: from.text(rule),
                });
            }
            let node = Node::Val { value, cdata: rule.cdata };
            let placed = if rule.append {
                append(out, &rule.to, node)
            } else {
                set(out, &rule.to, node)
            };
            if !placed {
                self.fail(
                    rule,
                    out_path(out_prefix, rule),
                    "two rules disagree on the shape of the output here".into(),
                );
            }
        }
    }

    fn each(&mut self, rule: &Rule, path: &SrcPath, current: &'a Value, cur_in: &str, out: &mut Node, out_prefix: &str) {
        let list = match self.resolve(path, current) {
            Ok(v) => v.map(value::items).unwrap_or(&[]),
            Err(m) => {
                self.fail(rule, out_path(out_prefix, rule), m);
                return;
            }
        };
        let (list_in, list_out) = if self.explaining() {
            (concrete(path, cur_in), out_path(out_prefix, rule))
        } else {
            (String::new(), String::new())
        };
        let mut built = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            if let Some(cond) = &rule.when
                && !self.holds(rule, cond, item, out_prefix)
            {
                continue;
            }
            let mut node = Node::obj();
            // Without --explain the children's paths are not written anywhere
            // but errors, which name the rule relative to the element.
            let (item_in, item_out) = if self.explaining() {
                (format!("{list_in}/{i}"), format!("{list_out}[{}]", built.len() + 1))
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
                    out_path(out_prefix, rule),
                    format!("required, but the input has no elements at {}", path.text),
                );
            }
            return;
        }
        let Some(parent) = parent_mut(out, &rule.to) else {
            self.fail(
                rule,
                out_path(out_prefix, rule),
                "two rules disagree on the shape of the output here".into(),
            );
            return;
        };
        let Some(Seg::Key(last)) = rule.to.last() else { return };
        match parent.child_mut(last, || Node::Arr(Vec::new())) {
            Some(Node::Arr(items)) => items.extend(built),
            _ => self.fail(
                rule,
                out_path(out_prefix, rule),
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

    fn holds(&mut self, rule: &Rule, cond: &Cond, current: &'a Value, out_prefix: &str) -> bool {
        // The tested value is only compared, so it is borrowed from the input.
        let v = match self.resolve(&cond.path, current).and_then(|v| match v {
            None => Ok(None),
            Some(v) => value::text_of(v).map_err(|m| format!("{} {m}", cond.path.text)),
        }) {
            Ok(v) => v,
            Err(m) => {
                self.fail(rule, out_path(out_prefix, rule), format!("when: {m}"));
                return false;
            }
        };
        let v = v.as_deref();
        match &cond.test {
            Test::Equals(x) => v == Some(x.as_str()),
            Test::NotEquals(x) => v != Some(x.as_str()),
            Test::OneOf(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
            Test::Exists(want) => v.is_some_and(|v| !v.is_empty()) == *want,
        }
    }

    /// The rule's value before operations, and where it came from (for
    /// errors and explanations, rendered by [`Origin::text`] only when needed).
    fn value(&mut self, rule: &Rule, current: &'a Value, cur_in: &str, index: usize, out_prefix: &str) -> (Option<Scalar>, Origin) {
        let mut from = Origin {
            described: None,
            defaulted: false,
        };
        let value = match &rule.source {
            Source::Const(s) => Some(s.clone()),
            Source::Index => Some(Scalar {
                text: index.to_string(),
                kind: Kind::Number,
            }),
            Source::Each(_) => None,
            Source::Paths { paths, join } => {
                let mut described = self.explaining().then(Vec::new);
                let mut first = None;
                let mut joined: Option<String> = None;
                for p in paths {
                    match self.scalar_at(p, current) {
                        Ok(Some(s)) => {
                            if let Some(d) = &mut described {
                                d.push(format!("{} = {:?}", concrete(p, cur_in), s.text));
                            }
                            match join {
                                None => {
                                    first = Some(s);
                                    break;
                                }
                                Some(sep) => match &mut joined {
                                    Some(j) => {
                                        j.push_str(sep);
                                        j.push_str(&s.text);
                                    }
                                    None => joined = Some(s.text),
                                },
                            }
                        }
                        Ok(None) => {}
                        Err(m) => {
                            self.fail(rule, out_path(out_prefix, rule), m);
                            return (None, from);
                        }
                    }
                }
                from.described = described.map(|d| d.join(", "));
                match join {
                    Some(_) => joined.map(Scalar::string),
                    None => first,
                }
            }
        };
        match (value, &rule.default) {
            (None, Some(d)) => {
                from.defaulted = true;
                (Some(d.clone()), from)
            }
            (v, _) => (v, from),
        }
    }
}

/// Where a rule's value came from. Only errors and `--explain` print it, so
/// the text is put together on demand rather than for every rule.
struct Origin {
    /// The input paths read, with list positions and values (explaining only).
    described: Option<String>,
    /// The rule's default was used.
    defaulted: bool,
}

impl Origin {
    fn text(&self, rule: &Rule) -> String {
        let base = match (&self.described, &rule.source) {
            (Some(d), _) => d.clone(),
            (None, Source::Const(_)) => "constant".to_string(),
            (None, Source::Index) => "$index".to_string(),
            (None, Source::Each(_)) => String::new(),
            (None, Source::Paths { paths, .. }) => paths.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(", "),
        };
        if self.defaulted {
            format!("default (input {} absent)", if base.is_empty() { "value" } else { &base })
        } else {
            base
        }
    }
}

/// The output path of `rule` under `prefix`, as errors and explanations name it.
fn out_path(prefix: &str, rule: &Rule) -> String {
    format!("{prefix}/{}", rule.to_text)
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

/// Appends `value` to the list at `to` (created when absent).
fn append(out: &mut Node, to: &[Seg], value: Node) -> bool {
    let Some(Seg::Key(last)) = to.last() else { return false };
    match parent_mut(out, to).and_then(|p| p.child_mut(last, || Node::Arr(Vec::new()))) {
        Some(Node::Arr(items)) => {
            items.push(value);
            true
        }
        _ => false,
    }
}

fn set(out: &mut Node, to: &[Seg], value: Node) -> bool {
    let Some(Seg::Key(last)) = to.last() else { return false };
    match parent_mut(out, to) {
        Some(parent) => parent.set(last, value),
        None => false,
    }
}
