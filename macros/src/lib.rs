//! The `#[store_part]` attribute of `pronghorn-db`.
//!
//! A part of the crate's `Store` trait is written once, as an `impl` block
//! for `PgStore` whose methods carry their documentation; the attribute
//! derives from it the trait itself and the `DisabledStore` implementation,
//! whose every method fails with `Error::Disabled`.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{
    parse_macro_input, Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, Pat, PatIdent, Path,
    Signature,
};

/// Turns `impl SomePart for PgStore { async fn ... }` into three items:
///
/// - `pub trait SomePart: Send + Sync`, carrying the `impl` block's doc
///   comments and, for each method, its doc comments and signature;
/// - the `impl` block itself, for `PgStore`;
/// - `impl SomePart for DisabledStore`, each method returning
///   `Err(crate::error::Error::Disabled)`.
///
/// All three go through `#[async_trait]`. Every item of the block must be
/// an `async fn` taking `&self` and returning the crate's `Result`; anything
/// else is a compile error that points at it.
#[proc_macro_attribute]
pub fn store_part(args: TokenStream, input: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return syn::Error::new(
            Span::call_site(),
            "#[store_part] takes no arguments: write it on `impl SomePart for PgStore`",
        )
        .to_compile_error()
        .into();
    }
    let block = parse_macro_input!(input as ItemImpl);
    match expand(block) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(mut block: ItemImpl) -> syn::Result<proc_macro2::TokenStream> {
    let part: Path = match &block.trait_ {
        Some((None, path, _)) => path.clone(),
        _ => {
            return Err(syn::Error::new_spanned(
                &block.self_ty,
                "#[store_part] goes on `impl SomePart for PgStore`",
            ))
        }
    };
    if !block.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &block.generics,
            "a store part has no generics: `Store` must stay object-safe",
        ));
    }
    let (part_docs, other): (Vec<Attribute>, Vec<Attribute>) =
        block.attrs.drain(..).partition(is_doc);
    block.attrs = other;

    let mut declarations = Vec::new();
    let mut disabled = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else {
            return Err(syn::Error::new_spanned(
                item,
                "a store part holds `async fn`s only",
            ));
        };
        check(method)?;
        let (docs, other): (Vec<Attribute>, Vec<Attribute>) =
            method.attrs.drain(..).partition(is_doc);
        method.attrs = other;
        declarations.push(declaration(&docs, &method.sig));
        disabled.push(disabled_method(&method.sig));
    }

    let part_name = part
        .segments
        .last()
        .map(|s| s.ident.clone())
        .ok_or_else(|| syn::Error::new_spanned(&part, "a store part needs a name"))?;
    Ok(quote! {
        #(#part_docs)*
        #[::async_trait::async_trait]
        pub trait #part_name: Send + Sync {
            #(#declarations)*
        }

        #[::async_trait::async_trait]
        #block

        #[::async_trait::async_trait]
        impl #part for crate::store::DisabledStore {
            #(#disabled)*
        }
    })
}

fn is_doc(attr: &Attribute) -> bool {
    attr.path().is_ident("doc")
}

fn check(method: &ImplItemFn) -> syn::Result<()> {
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "a store method is an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a store method has no generics: `Store` must stay object-safe",
        ));
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => Ok(()),
        _ => Err(syn::Error::new_spanned(
            &sig.inputs,
            "a store method takes `&self` first",
        )),
    }
}

/// The trait's declaration of a method: its docs and signature, each
/// argument named plainly (a declaration allows no `mut` patterns).
fn declaration(docs: &[Attribute], sig: &Signature) -> proc_macro2::TokenStream {
    let mut sig = sig.clone();
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        if let FnArg::Typed(arg) = input {
            let ident = match &*arg.pat {
                Pat::Ident(PatIdent { ident, .. }) => ident.clone(),
                _ => syn::Ident::new(&format!("arg{i}"), Span::call_site()),
            };
            *arg.pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident,
                subpat: None,
            });
        }
    }
    quote! {
        #(#docs)*
        #sig;
    }
}

/// The `DisabledStore` body of a method: every argument ignored, the call
/// refused.
fn disabled_method(sig: &Signature) -> proc_macro2::TokenStream {
    let mut sig = sig.clone();
    for input in sig.inputs.iter_mut() {
        if let FnArg::Typed(arg) = input {
            *arg.pat = Pat::Wild(syn::PatWild {
                attrs: Vec::new(),
                underscore_token: Default::default(),
            });
        }
    }
    quote! {
        #sig {
            Err(crate::error::Error::Disabled)
        }
    }
}
