//! Conveniences on the contract's post record: typed attributes and common questions.

use crate::{Attr, AttrValue, Post};

impl Post {
    /// The attribute `name`, if an earlier plugin (or this one) set it.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs
            .iter()
            .find(|attr| attr.name == name)
            .map(|attr| &attr.value)
    }

    /// Sets (or replaces) the attribute `name`: `post.set_attr("score", 0.4)`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<AttrValue>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|attr| attr.name == name) {
            Some(attr) => attr.value = value,
            None => self.attrs.push(Attr {
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Removes the attribute `name`; returns its value if it was set.
    pub fn remove_attr(&mut self, name: &str) -> Option<AttrValue> {
        let index = self.attrs.iter().position(|attr| attr.name == name)?;
        Some(self.attrs.remove(index).value)
    }

    /// The attribute `name` as a number (integers are widened).
    pub fn attr_f64(&self, name: &str) -> Option<f64> {
        match self.attr(name)? {
            AttrValue::Float(value) => Some(*value),
            AttrValue::Integer(value) => Some(*value as f64),
            _ => None,
        }
    }

    /// The attribute `name` as a string.
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        match self.attr(name)? {
            AttrValue::Text(value) => Some(value),
            _ => None,
        }
    }

    /// The attribute `name` as a boolean.
    pub fn attr_bool(&self, name: &str) -> Option<bool> {
        match self.attr(name)? {
            AttrValue::Boolean(value) => Some(*value),
            _ => None,
        }
    }

    /// The tags of the filtered-stream rules that matched, in order.
    pub fn rule_tags(&self) -> impl Iterator<Item = &str> {
        self.matching_rules.iter().map(|rule| rule.tag.as_str())
    }

    /// True when the post has the hashtag (without `#`, ASCII case-insensitive).
    pub fn has_hashtag(&self, tag: &str) -> bool {
        let tag = tag.trim_start_matches('#');
        self.hashtags
            .iter()
            .any(|hashtag| hashtag.eq_ignore_ascii_case(tag))
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> AttrValue {
        AttrValue::Boolean(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> AttrValue {
        AttrValue::Integer(value)
    }
}

impl From<i32> for AttrValue {
    fn from(value: i32) -> AttrValue {
        AttrValue::Integer(value.into())
    }
}

impl From<u32> for AttrValue {
    fn from(value: u32) -> AttrValue {
        AttrValue::Integer(value.into())
    }
}

impl From<f64> for AttrValue {
    fn from(value: f64) -> AttrValue {
        AttrValue::Float(value)
    }
}

impl From<f32> for AttrValue {
    fn from(value: f32) -> AttrValue {
        AttrValue::Float(value.into())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> AttrValue {
        AttrValue::Text(value)
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> AttrValue {
        AttrValue::Text(value.to_owned())
    }
}

impl From<Vec<String>> for AttrValue {
    fn from(value: Vec<String>) -> AttrValue {
        AttrValue::Texts(value)
    }
}

impl From<&[&str]> for AttrValue {
    fn from(value: &[&str]) -> AttrValue {
        AttrValue::Texts(value.iter().map(|item| (*item).to_owned()).collect())
    }
}
