//! The attribute macros of the tweetpipe plugin SDK: they turn one plain Rust
//! function into a complete plugin component (the batch loop, `info`, `init`
//! and the component exports). Use them through `tweetpipe_plugin`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, ItemFn, Token, Type, parse_macro_input};

/// The field groups of the contract's `fields` flags, by the names authors use.
const FIELD_GROUPS: &[(&str, &str)] = &[
    ("text", "TEXT"),
    ("lang", "LANG"),
    ("author", "AUTHOR"),
    ("metrics", "METRICS"),
    ("entities", "ENTITIES"),
    ("hashtags", "ENTITIES"),
    ("mentions", "ENTITIES"),
    ("cashtags", "ENTITIES"),
    ("urls", "ENTITIES"),
    ("place", "PLACE"),
    ("kind", "KIND"),
    ("created_at", "KIND"),
    ("is_retweet", "KIND"),
    ("is_reply", "KIND"),
    ("is_quote", "KIND"),
    ("has_media", "KIND"),
    ("in_reply_to_user_id", "KIND"),
    ("rules", "RULES"),
    ("matching_rules", "RULES"),
    ("attrs", "ATTRS"),
];

/// Every flag of `fields`, for plugins that do not narrow what they read.
const ALL_FLAGS: &[&str] = &[
    "TEXT", "LANG", "AUTHOR", "METRICS", "ENTITIES", "PLACE", "KIND", "RULES", "ATTRS",
];

/// How the entry point takes the post.
#[derive(Clone, Copy)]
enum Argument {
    Owned,
    Ref,
    MutRef,
}

#[derive(Clone, Copy)]
enum Kind {
    Filter,
    Map,
    FilterMap,
}

/// Turns `fn(&Post) -> bool` (or `-> Result<bool>`) into a plugin that keeps the
/// posts for which it returns `true` and drops the others.
///
/// `#[filter(reads(lang, urls))]` declares the fields the function looks at, so
/// the host sends only those; without it every field is sent.
#[proc_macro_attribute]
pub fn filter(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Filter, args, item)
}

/// Turns `fn(Post) -> Post` (or `fn(&mut Post)`, either may return a `Result`)
/// into a plugin that keeps every post with the changes the function made.
///
/// `fn(&Post) -> Changes` (or `-> Result<Changes>`) says what to change
/// instead; nothing is copied or compared, so it is the fastest form.
#[proc_macro_attribute]
pub fn map(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Map, args, item)
}

/// Turns `fn(Post) -> Option<Post>` (or `-> Result<Option<Post>>`) into a plugin
/// that keeps `Some` posts with their changes and drops `None`.
///
/// `fn(&Post) -> Option<Changes>` (or `-> Result<Option<Changes>>`) keeps
/// `Some` posts with those changes; nothing is copied or compared.
#[proc_macro_attribute]
pub fn filter_map(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::FilterMap, args, item)
}

/// Marks `fn(&Config) -> Result<()>` as the plugin's initialisation: it runs
/// once per instance with the plugin's `config` table and may reject it.
/// Use it next to (in the same module as) `#[filter]`, `#[map]` or `#[filter_map]`.
#[proc_macro_attribute]
pub fn init(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return syn::Error::new(Span::call_site(), "#[init] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    let name = &function.sig.ident;
    quote! {
        #function

        impl ::tweetpipe_plugin::__private::UserInit for __TweetpipePlugin {
            fn init(config: &::tweetpipe_plugin::Config) -> ::tweetpipe_plugin::Result<()> {
                ::tweetpipe_plugin::__private::InitOutput::into_result(#name(config))
            }
        }
    }
    .into()
}

fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut reads: Option<Vec<Ident>> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("reads") {
            let content;
            syn::parenthesized!(content in meta.input);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            let mut fields = Vec::new();
            for ident in names {
                let Some((_, flag)) = FIELD_GROUPS.iter().find(|(name, _)| ident == name) else {
                    let known: Vec<&str> = FIELD_GROUPS.iter().map(|(name, _)| *name).collect();
                    return Err(syn::Error::new(
                        ident.span(),
                        format!("unknown post field `{ident}` (known: {})", known.join(", ")),
                    ));
                };
                fields.push(Ident::new(flag, ident.span()));
            }
            reads = Some(fields);
            Ok(())
        } else {
            Err(meta.error("expected `reads(field, ...)`"))
        }
    });
    parse_macro_input!(args with parser);
    let function = parse_macro_input!(item as ItemFn);
    match expand_entry(kind, reads, &function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand_entry(
    kind: Kind,
    reads: Option<Vec<Ident>>,
    function: &ItemFn,
) -> syn::Result<TokenStream2> {
    let name = &function.sig.ident;
    let name_text = name.to_string();
    if function.sig.inputs.len() != 1 {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "a plugin function takes exactly one argument: the post",
        ));
    }
    let reference = match function.sig.inputs.first() {
        Some(FnArg::Typed(argument)) => match &*argument.ty {
            Type::Reference(reference) if reference.mutability.is_some() => Argument::MutRef,
            Type::Reference(_) => Argument::Ref,
            _ => Argument::Owned,
        },
        _ => Argument::Owned,
    };
    let reads = match reads {
        None => {
            let all = ALL_FLAGS
                .iter()
                .map(|flag| Ident::new(flag, Span::call_site()));
            quote!(#(::tweetpipe_plugin::Fields::#all)|*)
        }
        Some(fields) if fields.is_empty() => quote!(::tweetpipe_plugin::Fields::empty()),
        Some(fields) => quote!(#(::tweetpipe_plugin::Fields::#fields)|*),
    };
    let body = match kind {
        Kind::Filter => quote! {
            ::tweetpipe_plugin::__private::run_filter(batch, #name_text, |post| #name(post))
        },
        Kind::Map => match reference {
            Argument::Ref => quote! {
                ::tweetpipe_plugin::__private::run_map_ref(batch, |post| #name(post))
            },
            Argument::MutRef => quote! {
                ::tweetpipe_plugin::__private::run_map_in_place(batch, |post| #name(post))
            },
            Argument::Owned => quote! {
                ::tweetpipe_plugin::__private::run_map(batch, |post| #name(post))
            },
        },
        Kind::FilterMap => match reference {
            Argument::Ref => quote! {
                ::tweetpipe_plugin::__private::run_filter_map_ref(batch, #name_text, |post| #name(post))
            },
            Argument::MutRef => {
                return Err(syn::Error::new_spanned(
                    &function.sig.inputs,
                    "#[filter_map] takes `Post` (returning `Option<Post>`) or `&Post` (returning `Option<Changes>`)",
                ));
            }
            Argument::Owned => quote! {
                ::tweetpipe_plugin::__private::run_filter_map(batch, #name_text, |post| #name(post))
            },
        },
    };
    Ok(quote! {
        #function

        #[doc(hidden)]
        pub struct __TweetpipePlugin;

        impl ::tweetpipe_plugin::__private::Guest for __TweetpipePlugin {
            fn info() -> ::tweetpipe_plugin::__private::Info {
                ::tweetpipe_plugin::__private::info(
                    ::core::env!("CARGO_PKG_NAME"),
                    ::core::env!("CARGO_PKG_VERSION"),
                    #reads,
                )
            }

            fn init(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                #[allow(unused_imports)]
                use ::tweetpipe_plugin::__private::{ViaDefaultInit as _, ViaUserInit as _};
                (&::tweetpipe_plugin::__private::InitDispatch::<__TweetpipePlugin>::new())
                    .dispatch_init(config)
            }

            fn process(
                batch: ::tweetpipe_plugin::__private::WireBatch,
            ) -> ::std::vec::Vec<::tweetpipe_plugin::__private::Outcome> {
                #body
            }
        }

        ::tweetpipe_plugin::bindings::__export_plugin!(__TweetpipePlugin with_types_in ::tweetpipe_plugin::bindings);
    })
}
