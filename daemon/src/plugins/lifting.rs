//! What `process` returns, lifted by wasmtime and bounded before the host keeps it.
//!
//! wasmtime lifts the `list<outcome>` through its public, derived code into
//! the records `bindgen!` generates for the WIT, and checks what the canonical
//! ABI demands (bounds, alignment, cases, UTF-8). What one call may make the
//! host allocate is bounded while it lifts: the store's hostcall fuel
//! ([`wasmtime::Store::set_hostcall_fuel`]) is what is left of the batch's
//! budget, and wasmtime charges it for every string and list it copies, each
//! time one is referenced, so a plugin returning one buffer for every post (or
//! millions of outcomes for a batch of ten) fails before the copies exist.
//! The outcomes are then measured exactly on the host: the count, each post's
//! limit and what the call spent of the batch's budget.
//!
//! Attribute names are shared: plugins set the same few names on every post,
//! so each name is allocated once per thread instead of once per post.

use std::cell::RefCell;

use wasmtime::Store;

use super::bindings as wit;
use super::engine::HostState;
use crate::post::{AttrName, AttrValue};

/// What `process` returns: one outcome per post.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcomes {
    pub(crate) outcomes: Vec<Outcome>,
    /// The attributes every outcome sets, one outcome after the other, so a
    /// batch keeps them in one buffer instead of one per changed post.
    pub(crate) attrs: Vec<(AttrName, AttrValue)>,
}

impl Outcomes {
    /// Appends `other`'s outcomes (and their attributes) after these.
    pub(crate) fn append(&mut self, mut other: Outcomes) {
        self.outcomes.append(&mut other.outcomes);
        self.attrs.append(&mut other.attrs);
    }
}

/// The contract's `outcome`, with the host's attribute types.
// Boxing the changes would cost an allocation per changed post; outcomes live
// only from one call's lift to the changes being applied.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Keep the post, with these changes if any.
    Keep(Option<Changes>),
    /// Drop the post on purpose, with a reason.
    Drop(String),
    /// The plugin could not process the post.
    Fail(String),
}

/// The contract's `changes`: every `None` means "unchanged".
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub(crate) text: Option<String>,
    pub(crate) lang: Option<String>,
    pub(crate) author_id: Option<String>,
    pub(crate) author_username: Option<String>,
    pub(crate) author_name: Option<String>,
    pub(crate) author_location: Option<Option<String>>,
    pub(crate) mentions: Option<Vec<String>>,
    pub(crate) urls: Option<Vec<String>>,
    pub(crate) in_reply_to_user_id: Option<Option<String>>,
    /// How many attributes this outcome sets: the next ones of
    /// [`Outcomes::attrs`], in the plugin's order (a repeated name keeps its
    /// last value).
    pub(crate) set_attrs: usize,
    pub(crate) remove_attrs: Vec<String>,
}

/// The host's outcome for a lifted `wit::Outcome`; its attributes go to `attrs`.
fn outcome_from_wit(outcome: wit::Outcome, attrs: &mut Vec<(AttrName, AttrValue)>) -> Outcome {
    match outcome {
        wit::Outcome::Keep(changes) => {
            Outcome::Keep(changes.map(|changes| changes_from_wit(changes, attrs)))
        }
        wit::Outcome::Drop(reason) => Outcome::Drop(reason),
        wit::Outcome::Fail(error) => Outcome::Fail(error),
    }
}

fn changes_from_wit(changes: wit::Changes, attrs: &mut Vec<(AttrName, AttrValue)>) -> Changes {
    let set_attrs = changes.set_attrs.len();
    attrs.extend(
        changes
            .set_attrs
            .into_iter()
            .map(|attr| (attr_name(&attr.name), attr_value(attr.value))),
    );
    Changes {
        text: changes.text,
        lang: changes.lang,
        author_id: changes.author_id,
        author_username: changes.author_username,
        author_name: changes.author_name,
        author_location: changes.author_location,
        mentions: changes.mentions,
        urls: changes.urls,
        in_reply_to_user_id: changes.in_reply_to_user_id,
        set_attrs,
        remove_attrs: changes.remove_attrs,
    }
}

fn attr_value(value: wit::AttrValue) -> AttrValue {
    match value {
        wit::AttrValue::Boolean(value) => AttrValue::Bool(value),
        wit::AttrValue::Integer(value) => AttrValue::Int(value),
        wit::AttrValue::Float(value) => AttrValue::Float(value),
        wit::AttrValue::Text(value) => AttrValue::Str(value),
        wit::AttrValue::Texts(value) => AttrValue::List(value),
    }
}

/// The reason a call that returned `returned` outcomes for `posts` posts fails with.
pub(crate) fn wrong_count(returned: usize, posts: usize) -> String {
    format!("returned {returned} outcomes for {posts} posts")
}

/// The reason a post past `limits.post_bytes` fails with.
fn post_limit(size: usize, limits: ResultLimits) -> String {
    format!(
        "returned {} KiB for one post, past the limit of {} KiB on one post's changes (`max_post_kb` of its [[plugins]] entry)",
        size / 1024,
        limits.post_bytes / 1024
    )
}

/// The reason a call past what is left of its batch's budget fails with;
/// `total` is `None` when wasmtime stopped lifting it at the budget.
fn call_limit(total: Option<usize>, limits: ResultLimits) -> String {
    let returned = match total {
        Some(total) => format!("{} KiB", total / 1024),
        None => format!(
            "more than the {} KiB left",
            limits.call_bytes.saturating_sub(limits.spent) / 1024
        ),
    };
    let earlier = match limits.spent {
        0 => String::new(),
        spent => format!(
            " with the {} KiB it returned for the batch's other posts",
            spent / 1024
        ),
    };
    format!(
        "returned {returned} of strings and lists in one call, past its limit of {} KiB per batch{earlier} (`max_result_mb` of its [[plugins]] entry)",
        limits.call_bytes / 1024
    )
}

/// What one `process` call may hand the host: a string or list referenced by
/// several outcomes counts each time, since each becomes its own copy, and an
/// item of a list counts what the host spends on it even when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultLimits {
    /// The strings of all outcomes together, for one batch: when a batch is
    /// retried post by post, its calls share this budget, so a plugin hands
    /// the host at most this much per batch however it is called.
    pub(crate) call_bytes: usize,
    /// The strings of one outcome; past it that post fails.
    pub(crate) post_bytes: usize,
    /// What earlier calls for the same batch returned.
    pub(crate) spent: usize,
    /// How many outcomes the call must return (one per post of its batch);
    /// `None` when any number will do.
    pub(crate) outcomes: Option<usize>,
}

/// The hostcall fuel a call gets at least: the plugin's own calls into the
/// host (a log line written to stdout) are charged the same fuel while it
/// runs, and must not trap because the batch's budget is nearly spent. What
/// the call returns is measured exactly afterwards.
const MIN_FUEL: usize = 64 * 1024;

/// What the store's hostcall fuel is between calls: wasmtime's default.
const DEFAULT_FUEL: usize = 128 << 20;

/// Runs `call` (a `process` call) with the hostcall fuel set to what is left
/// of `limits`; checks and converts what it returned, and adds that to
/// `limits.spent`.
pub(crate) fn lift_within(
    store: &mut Store<HostState>,
    limits: &mut ResultLimits,
    call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<Vec<wit::Outcome>>,
) -> wasmtime::Result<Outcomes> {
    // wasmtime also charges the outcome records themselves; those of the
    // right count are not part of the budget.
    let records = limits
        .outcomes
        .unwrap_or(0)
        .saturating_mul(std::mem::size_of::<wit::Outcome>());
    let left = limits.call_bytes.saturating_sub(limits.spent);
    store.set_hostcall_fuel(left.max(MIN_FUEL).saturating_add(records));
    let returned = call(store);
    store.set_hostcall_fuel(DEFAULT_FUEL);
    let returned = returned.map_err(|error| {
        if is_out_of_fuel(&error) {
            wasmtime::Error::msg(call_limit(None, *limits))
        } else {
            error
        }
    })?;
    let outcomes = checked(returned, limits)?;
    Ok(outcomes)
}

/// wasmtime's error when lifting ran out of hostcall fuel (its type is private).
fn is_out_of_fuel(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .to_string()
            .contains("fuel allocated for hostcalls has been exhausted")
    })
}

/// Checks the count and the limits of what a call returned and converts it.
fn checked(returned: Vec<wit::Outcome>, limits: &mut ResultLimits) -> wasmtime::Result<Outcomes> {
    if let Some(expected) = limits.outcomes
        && returned.len() != expected
    {
        return Err(wasmtime::Error::msg(wrong_count(returned.len(), expected)));
    }
    let sizes: Vec<usize> = returned.iter().map(outcome_bytes).collect();
    let total = sizes
        .iter()
        .filter(|size| **size <= limits.post_bytes)
        .fold(0usize, |total, size| total.saturating_add(*size));
    if total.saturating_add(limits.spent) > limits.call_bytes {
        return Err(wasmtime::Error::msg(call_limit(Some(total), *limits)));
    }
    limits.spent += total;
    let mut lifted = Outcomes {
        outcomes: Vec::with_capacity(returned.len()),
        attrs: Vec::new(),
    };
    for (outcome, size) in returned.into_iter().zip(sizes) {
        let outcome = if size > limits.post_bytes {
            Outcome::Fail(post_limit(size, *limits))
        } else {
            outcome_from_wit(outcome, &mut lifted.attrs)
        };
        lifted.outcomes.push(outcome);
    }
    Ok(lifted)
}

/// What the host spends on an item of a `list<string>` besides its bytes: a
/// list of empty strings costs nothing in the plugin's strings, and a
/// `String` each on the host.
const STRING_ITEM_COST: usize = std::mem::size_of::<String>();
/// What the host spends on an attribute besides its strings' bytes.
const ATTR_ITEM_COST: usize = std::mem::size_of::<(AttrName, AttrValue)>();

fn strings_cost(strings: &[String]) -> usize {
    strings.iter().map(String::len).fold(
        strings.len().saturating_mul(STRING_ITEM_COST),
        usize::saturating_add,
    )
}

/// The bytes one outcome holds on the host (its strings, and its lists' items).
fn outcome_bytes(outcome: &wit::Outcome) -> usize {
    let changes = match outcome {
        wit::Outcome::Drop(reason) | wit::Outcome::Fail(reason) => return reason.len(),
        wit::Outcome::Keep(None) => return 0,
        wit::Outcome::Keep(Some(changes)) => changes,
    };
    let mut total = [
        &changes.text,
        &changes.lang,
        &changes.author_id,
        &changes.author_username,
        &changes.author_name,
    ]
    .into_iter()
    .flatten()
    .map(String::len)
    .sum::<usize>();
    for cleared in [&changes.author_location, &changes.in_reply_to_user_id] {
        if let Some(Some(text)) = cleared {
            total = total.saturating_add(text.len());
        }
    }
    for list in [&changes.mentions, &changes.urls].into_iter().flatten() {
        total = total.saturating_add(strings_cost(list));
    }
    total = total.saturating_add(strings_cost(&changes.remove_attrs));
    total = total.saturating_add(changes.set_attrs.len().saturating_mul(ATTR_ITEM_COST));
    for attr in &changes.set_attrs {
        total = total.saturating_add(attr.name.len());
        total = total.saturating_add(match &attr.value {
            wit::AttrValue::Text(text) => text.len(),
            wit::AttrValue::Texts(texts) => strings_cost(texts),
            _ => 0,
        });
    }
    total
}

/// How many attribute names a thread keeps for sharing; names past these
/// (a plugin making up names per post) are allocated each time.
const SHARED_NAMES: usize = 256;

thread_local! {
    static NAMES: RefCell<Vec<AttrName>> = const { RefCell::new(Vec::new()) };
}

/// `name` as a shared attribute name: the one this thread made before, if any.
fn attr_name(name: &str) -> AttrName {
    NAMES.with_borrow_mut(|names| {
        if let Some(shared) = names.iter().find(|shared| ***shared == *name) {
            return shared.clone();
        }
        let shared = AttrName::from(name);
        if names.len() < SHARED_NAMES {
            names.push(shared.clone());
        }
        shared
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn limits(call_bytes: usize, post_bytes: usize) -> ResultLimits {
        ResultLimits {
            call_bytes,
            post_bytes,
            spent: 0,
            outcomes: None,
        }
    }

    fn keep(changes: wit::Changes) -> wit::Outcome {
        wit::Outcome::Keep(Some(changes))
    }

    fn no_changes() -> wit::Changes {
        wit::Changes {
            text: None,
            lang: None,
            author_id: None,
            author_username: None,
            author_name: None,
            author_location: None,
            mentions: None,
            urls: None,
            in_reply_to_user_id: None,
            set_attrs: Vec::new(),
            remove_attrs: Vec::new(),
        }
    }

    #[test]
    fn a_keep_with_attributes_is_converted() {
        let returned = vec![
            keep(wit::Changes {
                lang: Some("pt".to_owned()),
                set_attrs: vec![
                    wit::Attr {
                        name: "n".to_owned(),
                        value: wit::AttrValue::Integer(-2),
                    },
                    wit::Attr {
                        name: "f".to_owned(),
                        value: wit::AttrValue::Float(0.5),
                    },
                ],
                ..no_changes()
            }),
            wit::Outcome::Drop("abc".to_owned()),
        ];
        let lifted = checked(returned, &mut limits(usize::MAX, usize::MAX)).unwrap();
        let changes = Changes {
            lang: Some("pt".to_owned()),
            set_attrs: 2,
            ..Changes::default()
        };
        assert_eq!(
            lifted.outcomes,
            [
                Outcome::Keep(Some(changes)),
                Outcome::Drop("abc".to_owned())
            ]
        );
        assert_eq!(
            lifted.attrs,
            [
                (AttrName::from("n"), AttrValue::Int(-2)),
                (AttrName::from("f"), AttrValue::Float(0.5)),
            ]
        );
    }

    #[test]
    fn a_wrong_outcome_count_fails() {
        let mut limits = ResultLimits {
            outcomes: Some(2),
            ..limits(usize::MAX, usize::MAX)
        };
        let error = checked(vec![wit::Outcome::Keep(None)], &mut limits)
            .unwrap_err()
            .to_string();
        assert_eq!(error, wrong_count(1, 2));
    }

    /// Issue 19: one list of empty strings returned as every post's
    /// `mentions` costs the host a `String` per item per post while holding
    /// no bytes; each item counts what it costs.
    #[test]
    fn a_list_of_empty_strings_counts_its_items() {
        let returned = || {
            (0..3)
                .map(|_| {
                    keep(wit::Changes {
                        mentions: Some(vec![String::new(); 500]),
                        ..no_changes()
                    })
                })
                .collect::<Vec<_>>()
        };
        let per_post = 500 * STRING_ITEM_COST;
        let mut fits = limits(3 * per_post, per_post);
        let lifted = checked(returned(), &mut fits).unwrap();
        assert_eq!(fits.spent, 3 * per_post);
        assert!(matches!(&lifted.outcomes[2], Outcome::Keep(Some(changes))
            if changes.mentions.as_ref().is_some_and(|mentions| mentions.len() == 500)));
        let error = checked(returned(), &mut limits(3 * per_post - 1, per_post))
            .unwrap_err()
            .to_string();
        assert!(error.contains("in one call"), "{error}");
        let lifted = checked(returned(), &mut limits(3 * per_post, per_post - 1)).unwrap();
        assert!(
            lifted.outcomes.iter().all(
                |outcome| matches!(outcome, Outcome::Fail(reason) if reason.contains("max_post_kb"))
            ),
            "{lifted:?}"
        );
    }

    /// The batch's budget is shared by the calls of its retry post by post.
    #[test]
    fn what_earlier_calls_spent_counts() {
        let text = || {
            vec![keep(wit::Changes {
                text: Some("x".repeat(2048)),
                ..no_changes()
            })]
        };
        let mut shared = limits(3072, 2048);
        checked(text(), &mut shared).unwrap();
        assert_eq!(shared.spent, 2048);
        let error = checked(text(), &mut shared).unwrap_err().to_string();
        assert!(
            error.contains("with the 2 KiB it returned for the batch's other posts"),
            "{error}"
        );
        assert_eq!(shared.spent, 2048);
    }

    #[test]
    fn every_field_counts() {
        let changes = wit::Changes {
            text: Some("t".to_owned()),
            lang: Some("la".to_owned()),
            author_id: Some("123".to_owned()),
            author_username: Some("user".to_owned()),
            author_name: Some("names".to_owned()),
            author_location: Some(Some("place!".to_owned())),
            mentions: Some(vec!["m".to_owned()]),
            urls: Some(vec!["u".to_owned(), "v".to_owned()]),
            in_reply_to_user_id: Some(Some("1234567".to_owned())),
            set_attrs: vec![wit::Attr {
                name: "nm".to_owned(),
                value: wit::AttrValue::Texts(vec!["abc".to_owned()]),
            }],
            remove_attrs: vec!["gone".to_owned()],
        };
        let strings = 1 + 2 + 3 + 4 + 5 + 6 + 7 + 1 + 2 + 2 + 3 + 4;
        let items = 5 * STRING_ITEM_COST + ATTR_ITEM_COST;
        assert_eq!(outcome_bytes(&keep(changes)), strings + items);
        assert_eq!(outcome_bytes(&wit::Outcome::Fail("oops".to_owned())), 4);
        assert_eq!(outcome_bytes(&wit::Outcome::Keep(None)), 0);
    }

    #[test]
    fn attribute_names_are_shared_up_to_a_bound() {
        let first = attr_name("shared_name");
        assert!(Arc::ptr_eq(&first, &attr_name("shared_name")));
        // Past the bound, names still come out right, only unshared.
        let made_up: Vec<_> = (0..SHARED_NAMES + 10)
            .map(|index| attr_name(&format!("made_up_{index}")))
            .collect();
        let last = format!("made_up_{}", SHARED_NAMES + 9);
        assert_eq!(&*made_up[SHARED_NAMES + 9], last);
        assert!(!Arc::ptr_eq(&made_up[SHARED_NAMES + 9], &attr_name(&last)));
        assert!(Arc::ptr_eq(&first, &attr_name("shared_name")));
    }
}
