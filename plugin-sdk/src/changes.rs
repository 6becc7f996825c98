//! [`Changes`]: what a plugin changes on a post it keeps, said directly, so the
//! SDK never copies the post to find out what changed.

use crate::{Attr, AttrValue, Post};

use crate::bindings::exports::tweetpipe::plugin::processor::Changes as Wire;

/// What to change on a post the plugin keeps: attributes to set or remove and
/// the fields the contract lets a plugin rewrite.
///
/// Entry points that take `&Post` return `Changes` (see [`map`](crate::map)
/// and [`filter_map`](crate::filter_map)). Nothing is copied to compute them,
/// which makes these the fastest way to annotate posts:
///
/// ```rust
/// # use tweetpipe_plugin::prelude::*;
/// #[map(reads(text))]
/// fn length(post: &Post) -> Changes {
///     Changes::new().with_attr("text_chars", post.text.chars().count() as i64)
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Changes(Wire);

impl Default for Changes {
    fn default() -> Changes {
        Changes::new()
    }
}

impl Changes {
    /// No changes: the post is kept as it is.
    pub fn new() -> Changes {
        Changes(Wire {
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
        })
    }

    /// True when nothing is changed.
    pub fn is_empty(&self) -> bool {
        let Wire {
            text,
            lang,
            author_id,
            author_username,
            author_name,
            author_location,
            mentions,
            urls,
            in_reply_to_user_id,
            set_attrs,
            remove_attrs,
        } = &self.0;
        text.is_none()
            && lang.is_none()
            && author_id.is_none()
            && author_username.is_none()
            && author_name.is_none()
            && author_location.is_none()
            && mentions.is_none()
            && urls.is_none()
            && in_reply_to_user_id.is_none()
            && set_attrs.is_empty()
            && remove_attrs.is_empty()
    }

    /// Sets (or replaces) the attribute `name`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<AttrValue>) -> &mut Changes {
        let value = value.into();
        self.0.remove_attrs.retain(|removed| removed != name);
        match self.0.set_attrs.iter_mut().find(|attr| attr.name == name) {
            Some(attr) => attr.value = value,
            None => {
                // Room for a plugin's usual handful of attributes at once,
                // instead of growing 1 → 4 → 8.
                if self.0.set_attrs.capacity() == 0 {
                    self.0.set_attrs.reserve(8);
                }
                self.0.set_attrs.push(Attr {
                    name: name.to_owned(),
                    value,
                });
            }
        }
        self
    }

    /// [`Changes::set_attr`], by value: `Changes::new().with_attr("score", 0.4)`.
    pub fn with_attr(mut self, name: &str, value: impl Into<AttrValue>) -> Changes {
        self.set_attr(name, value);
        self
    }

    /// Removes the attribute `name` (set by an earlier plugin).
    pub fn remove_attr(&mut self, name: &str) -> &mut Changes {
        self.0.set_attrs.retain(|attr| attr.name != name);
        if !self.0.remove_attrs.iter().any(|removed| removed == name) {
            self.0.remove_attrs.push(name.to_owned());
        }
        self
    }

    /// Replaces the text.
    pub fn set_text(&mut self, text: impl Into<String>) -> &mut Changes {
        self.0.text = Some(text.into());
        self
    }

    /// Replaces the language tag.
    pub fn set_lang(&mut self, lang: impl Into<String>) -> &mut Changes {
        self.0.lang = Some(lang.into());
        self
    }

    /// Replaces the author's id (e.g. with a pseudonym).
    pub fn set_author_id(&mut self, id: impl Into<String>) -> &mut Changes {
        self.0.author_id = Some(id.into());
        self
    }

    /// Replaces the author's handle.
    pub fn set_author_username(&mut self, username: impl Into<String>) -> &mut Changes {
        self.0.author_username = Some(username.into());
        self
    }

    /// Replaces the author's display name.
    pub fn set_author_name(&mut self, name: impl Into<String>) -> &mut Changes {
        self.0.author_name = Some(name.into());
        self
    }

    /// Replaces (`Some`) or clears (`None`) the author's profile location.
    pub fn set_author_location(&mut self, location: Option<String>) -> &mut Changes {
        self.0.author_location = Some(location);
        self
    }

    /// Replaces the mentioned usernames.
    pub fn set_mentions(&mut self, mentions: Vec<String>) -> &mut Changes {
        self.0.mentions = Some(mentions);
        self
    }

    /// Replaces the expanded URLs.
    pub fn set_urls(&mut self, urls: Vec<String>) -> &mut Changes {
        self.0.urls = Some(urls);
        self
    }

    /// Replaces (`Some`) or clears (`None`) the id of the user replied to.
    pub fn set_in_reply_to_user_id(&mut self, id: Option<String>) -> &mut Changes {
        self.0.in_reply_to_user_id = Some(id);
        self
    }

    /// Applies these changes to `post`, as the host does with the full post;
    /// handy in a plugin's own tests.
    pub fn apply(self, post: &mut Post) {
        let Wire {
            text,
            lang,
            author_id,
            author_username,
            author_name,
            author_location,
            mentions,
            urls,
            in_reply_to_user_id,
            set_attrs,
            remove_attrs,
        } = self.0;
        if let Some(text) = text {
            post.text = text;
        }
        if let Some(lang) = lang {
            post.lang = lang;
        }
        if let Some(id) = author_id {
            post.author.id = id;
        }
        if let Some(username) = author_username {
            post.author.username = username;
        }
        if let Some(name) = author_name {
            post.author.name = name;
        }
        if let Some(location) = author_location {
            post.author.location = location;
        }
        if let Some(mentions) = mentions {
            post.mentions = mentions;
        }
        if let Some(urls) = urls {
            post.urls = urls;
        }
        if let Some(id) = in_reply_to_user_id {
            post.in_reply_to_user_id = id;
        }
        post.attrs.retain(|attr| !remove_attrs.contains(&attr.name));
        for attr in set_attrs {
            post.set_attr(&attr.name, attr.value);
        }
    }

    /// The contract's form; `None` when nothing changed.
    pub(crate) fn into_wire(self) -> Option<Wire> {
        (!self.is_empty()).then_some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Author, Metrics};

    fn post() -> Post {
        Post {
            id: "1".to_owned(),
            created_at: None,
            text: "hi".to_owned(),
            lang: "en".to_owned(),
            author: Author {
                id: "2".to_owned(),
                username: "ana".to_owned(),
                name: "Ana".to_owned(),
                location: Some("Porto".to_owned()),
                followers: 0,
                verified: false,
            },
            metrics: Metrics {
                retweets: 0,
                likes: 0,
                replies: 0,
                quotes: 0,
            },
            hashtags: Vec::new(),
            mentions: vec!["bob".to_owned()],
            cashtags: Vec::new(),
            urls: Vec::new(),
            place: None,
            is_retweet: false,
            is_reply: false,
            is_quote: false,
            has_media: false,
            in_reply_to_user_id: None,
            matching_rules: Vec::new(),
            attrs: vec![Attr {
                name: "old".to_owned(),
                value: AttrValue::Integer(1),
            }],
        }
    }

    #[test]
    fn no_changes_cross_as_none() {
        assert!(Changes::new().is_empty());
        assert_eq!(Changes::new().into_wire(), None);
        assert!(!Changes::new().with_attr("a", 1).is_empty());
    }

    #[test]
    fn the_last_word_on_an_attribute_wins() {
        let mut changes = Changes::new();
        changes.set_attr("score", 0.1).set_attr("score", 0.2);
        changes.remove_attr("gone").set_attr("gone", true);
        changes.set_attr("dropped", "x").remove_attr("dropped");
        let wire = changes.into_wire().expect("changes");
        let set: Vec<(&str, &AttrValue)> = wire
            .set_attrs
            .iter()
            .map(|attr| (attr.name.as_str(), &attr.value))
            .collect();
        assert_eq!(
            set,
            [
                ("score", &AttrValue::Float(0.2)),
                ("gone", &AttrValue::Boolean(true))
            ]
        );
        assert_eq!(wire.remove_attrs, ["dropped"]);
    }

    #[test]
    fn applying_changes_edits_only_what_they_name() {
        let mut edited = post();
        let mut changes = Changes::new().with_attr("score", 0.5);
        changes
            .set_text("[redacted]")
            .set_author_location(None)
            .set_mentions(vec!["u_1".to_owned()])
            .remove_attr("old");
        changes.apply(&mut edited);
        let mut expected = post();
        expected.text = "[redacted]".to_owned();
        expected.author.location = None;
        expected.mentions = vec!["u_1".to_owned()];
        expected.attrs = vec![Attr {
            name: "score".to_owned(),
            value: AttrValue::Float(0.5),
        }];
        assert_eq!(edited, expected);
    }
}
