//! Support code for the attribute macros: the batch loops, the diff that turns a
//! modified post into `changes`, and the optional-`#[init]` dispatch. Not a
//! public API; it may change in any release.

use std::marker::PhantomData;

pub use wit_bindgen;

pub use crate::bindings::exports::tweetpipe::plugin::processor::{
    Batch as WireBatch, Changes as WireChanges, Guest, Outcome, PluginInfo as Info,
};
use crate::post::Storage;
use crate::{Attr, Changes, Config, Error, Fields, Post, Result};

/// The `info` export.
pub fn info(name: &str, version: &str, reads: Fields) -> Info {
    Info {
        name: name.to_owned(),
        version: version.to_owned(),
        reads,
    }
}

/// What a `#[filter]` function may return.
pub trait FilterOutput {
    fn into_result(self) -> Result<bool>;
}

impl FilterOutput for bool {
    fn into_result(self) -> Result<bool> {
        Ok(self)
    }
}

impl FilterOutput for Result<bool> {
    fn into_result(self) -> Result<bool> {
        self
    }
}

/// What a `#[map]` function may return.
pub trait MapOutput {
    fn into_result(self) -> Result<Post>;
}

impl MapOutput for Post {
    fn into_result(self) -> Result<Post> {
        Ok(self)
    }
}

impl MapOutput for Result<Post> {
    fn into_result(self) -> Result<Post> {
        self
    }
}

/// What a `#[map]` function that edits `&mut Post` in place may return.
pub trait InPlaceOutput {
    fn into_result(self) -> Result<()>;
}

impl InPlaceOutput for () {
    fn into_result(self) -> Result<()> {
        Ok(())
    }
}

impl InPlaceOutput for Result<()> {
    fn into_result(self) -> Result<()> {
        self
    }
}

/// What a `#[filter_map]` function may return.
pub trait FilterMapOutput {
    fn into_result(self) -> Result<Option<Post>>;
}

impl FilterMapOutput for Option<Post> {
    fn into_result(self) -> Result<Option<Post>> {
        Ok(self)
    }
}

impl FilterMapOutput for Result<Option<Post>> {
    fn into_result(self) -> Result<Option<Post>> {
        self
    }
}

/// What a `#[map]` function that reads `&Post` may return.
pub trait ChangesOutput {
    fn into_result(self) -> Result<Changes>;
}

impl ChangesOutput for Changes {
    fn into_result(self) -> Result<Changes> {
        Ok(self)
    }
}

impl ChangesOutput for Result<Changes> {
    fn into_result(self) -> Result<Changes> {
        self
    }
}

/// What a `#[filter_map]` function that reads `&Post` may return.
pub trait FilterChangesOutput {
    fn into_result(self) -> Result<Option<Changes>>;
}

impl FilterChangesOutput for Option<Changes> {
    fn into_result(self) -> Result<Option<Changes>> {
        Ok(self)
    }
}

impl FilterChangesOutput for Result<Option<Changes>> {
    fn into_result(self) -> Result<Option<Changes>> {
        self
    }
}

/// What an `#[init]` function may return.
pub trait InitOutput {
    fn into_result(self) -> Result<()>;
}

impl InitOutput for () {
    fn into_result(self) -> Result<()> {
        Ok(())
    }
}

impl InitOutput for Result<()> {
    fn into_result(self) -> Result<()> {
        self
    }
}

fn dropped(function: &str) -> Outcome {
    Outcome::Drop(format!("rejected by {function}"))
}

/// One outcome per post of `batch`: `answer` for each post read out of it,
/// `fail` for a post that points outside it. One post value is refilled for
/// every post of the batch, so reading a post allocates only when it holds
/// more or longer strings than the ones before it.
fn each_post(batch: WireBatch, mut answer: impl FnMut(&Post) -> Outcome) -> Vec<Outcome> {
    let (storage, posts) = Storage::split(batch);
    let mut post = Post::default();
    posts
        .into_iter()
        .map(|wire| match storage.fill(wire, &mut post) {
            Ok(()) => answer(&post),
            Err(error) => Outcome::Fail(error.to_string()),
        })
        .collect()
}

/// The batch loop of `#[filter]`.
pub fn run_filter<R: FilterOutput>(
    batch: WireBatch,
    function: &str,
    filter: impl Fn(&Post) -> R,
) -> Vec<Outcome> {
    each_post(batch, |post| match filter(post).into_result() {
        Ok(true) => Outcome::Keep(None),
        Ok(false) => dropped(function),
        Err(error) => Outcome::Fail(error.to_string()),
    })
}

/// The batch loop of `#[map]` taking and returning a `Post`.
pub fn run_map<R: MapOutput>(batch: WireBatch, map: impl Fn(Post) -> R) -> Vec<Outcome> {
    each_post(batch, |before| match map(before.clone()).into_result() {
        Ok(after) => Outcome::Keep(changes(before, after)),
        Err(error) => Outcome::Fail(error.to_string()),
    })
}

/// The batch loop of `#[map]` editing `&mut Post`.
pub fn run_map_in_place<R: InPlaceOutput>(
    batch: WireBatch,
    map: impl Fn(&mut Post) -> R,
) -> Vec<Outcome> {
    each_post(batch, |before| {
        let mut post = before.clone();
        match map(&mut post).into_result() {
            Ok(()) => Outcome::Keep(changes(before, post)),
            Err(error) => Outcome::Fail(error.to_string()),
        }
    })
}

/// The batch loop of `#[map]` reading `&Post` and returning its [`Changes`]:
/// nothing is copied or compared.
pub fn run_map_ref<R: ChangesOutput>(batch: WireBatch, map: impl Fn(&Post) -> R) -> Vec<Outcome> {
    each_post(batch, |post| match map(post).into_result() {
        Ok(changes) => Outcome::Keep(changes.into_wire()),
        Err(error) => Outcome::Fail(error.to_string()),
    })
}

/// The batch loop of `#[filter_map]` reading `&Post` and returning the
/// [`Changes`] of the posts it keeps.
pub fn run_filter_map_ref<R: FilterChangesOutput>(
    batch: WireBatch,
    function: &str,
    filter_map: impl Fn(&Post) -> R,
) -> Vec<Outcome> {
    each_post(batch, |post| match filter_map(post).into_result() {
        Ok(Some(changes)) => Outcome::Keep(changes.into_wire()),
        Ok(None) => dropped(function),
        Err(error) => Outcome::Fail(error.to_string()),
    })
}

/// The batch loop of `#[filter_map]`.
pub fn run_filter_map<R: FilterMapOutput>(
    batch: WireBatch,
    function: &str,
    filter_map: impl Fn(Post) -> R,
) -> Vec<Outcome> {
    each_post(batch, |before| {
        match filter_map(before.clone()).into_result() {
            Ok(Some(after)) => Outcome::Keep(changes(before, after)),
            Ok(None) => dropped(function),
            Err(error) => Outcome::Fail(error.to_string()),
        }
    })
}

/// What changed between the post a plugin received and the one it returned.
/// Only the fields the contract lets a plugin change are compared.
pub fn changes(before: &Post, after: Post) -> Option<WireChanges> {
    if before == &after {
        return None;
    }
    let Post {
        text,
        lang,
        author,
        mentions,
        urls,
        in_reply_to_user_id,
        attrs,
        ..
    } = after;
    let remove_attrs: Vec<String> = before
        .attrs
        .iter()
        .filter(|old| !attrs.iter().any(|attr| attr.name == old.name))
        .map(|old| old.name.clone())
        .collect();
    let set_attrs: Vec<Attr> = attrs
        .into_iter()
        .filter(|attr| before.attr(&attr.name) != Some(&attr.value))
        .collect();
    let changes = WireChanges {
        text: (text != before.text).then_some(text),
        lang: (lang != before.lang).then_some(lang),
        author_id: (author.id != before.author.id).then_some(author.id),
        author_username: (author.username != before.author.username).then_some(author.username),
        author_name: (author.name != before.author.name).then_some(author.name),
        author_location: (author.location != before.author.location).then_some(author.location),
        mentions: (mentions != before.mentions).then_some(mentions),
        urls: (urls != before.urls).then_some(urls),
        in_reply_to_user_id: (in_reply_to_user_id != before.in_reply_to_user_id)
            .then_some(in_reply_to_user_id),
        set_attrs,
        remove_attrs,
    };
    let unchanged = changes.text.is_none()
        && changes.lang.is_none()
        && changes.author_id.is_none()
        && changes.author_username.is_none()
        && changes.author_name.is_none()
        && changes.author_location.is_none()
        && changes.mentions.is_none()
        && changes.urls.is_none()
        && changes.in_reply_to_user_id.is_none()
        && changes.set_attrs.is_empty()
        && changes.remove_attrs.is_empty();
    (!unchanged).then_some(changes)
}

/// Implemented by `#[init]` for the plugin type the other attribute declares.
pub trait UserInit {
    fn init(config: &Config) -> Result<()>;
}

/// Calls the plugin's `#[init]` function when there is one, and accepts any
/// configuration otherwise (method resolution prefers the `UserInit` impl).
#[derive(Debug)]
pub struct InitDispatch<T>(PhantomData<T>);

impl<T> InitDispatch<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> InitDispatch<T> {
        InitDispatch(PhantomData)
    }
}

pub trait ViaUserInit {
    fn dispatch_init(&self, config: String) -> std::result::Result<(), String>;
}

impl<T: UserInit> ViaUserInit for InitDispatch<T> {
    fn dispatch_init(&self, config: String) -> std::result::Result<(), String> {
        Config::from_json(&config)
            .and_then(|config| T::init(&config))
            .map_err(|error: Error| error.to_string())
    }
}

pub trait ViaDefaultInit {
    fn dispatch_init(&self, config: String) -> std::result::Result<(), String>;
}

impl<T> ViaDefaultInit for &InitDispatch<T> {
    fn dispatch_init(&self, config: String) -> std::result::Result<(), String> {
        Config::from_json(&config)
            .map(drop)
            .map_err(|error| error.to_string())
    }
}
