//! `#[task]`: turns a plain function into a named task of `peer-core`.
//!
//! Used through `peer_core::task`; see `peer_core::named` for what it generates and why.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, ReturnType, Token, Type, parse_macro_input};

/// Registers a function as a named task that any peer with the same binary can run.
///
/// ```text
/// #[peer_core::task]
/// fn score(param: f64, data: &Vec<f64>) -> f64 { ... }
/// // generates `ScoreTask`, submitted with `client.submit_named(ScoreTask, (0.5, &data))`
///
/// #[peer_core::task(name = "risk.v2.score", handle = RiskScore)]
/// fn score_v2(...) -> f64 { ... }
/// ```
///
/// Parameters taken by reference are lent from the stored owned value (`&str` from a
/// `String`, `&[T]` from a `Vec<T>`, `&T` from a `T`); parameters taken by value are cloned
/// from it, so they must be `Clone`. Every parameter and the result must be `serde` types;
/// at most 12 parameters. Async, generic and `unsafe` functions, `self`, `&mut` and
/// `impl Trait` parameters are refused with an error at the offending part.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr as Options);
    let function = parse_macro_input!(item as ItemFn);
    match expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    handle: Option<Ident>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "name" => options.name = Some(input.parse()?),
                "handle" => options.handle = Some(input.parse()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{other}`; expected `name` or `handle`"),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(options)
    }
}

/// How one parameter is passed from the stored value.
struct Param {
    /// The stored (and encoded) type: the owned form of what the function borrows.
    ty: Type,
    /// The type as written, for the signature.
    written: Type,
    /// Whether the function takes it by reference; otherwise it is cloned.
    by_ref: bool,
}

/// Most parameters a named task takes (the arities `Args` is implemented for).
const MAX_PARAMS: usize = 12;

/// An error over all of `tokens` (a whole parameter or type, not just its first token).
fn error(tokens: &impl ToTokens, message: &str) -> syn::Error {
    syn::Error::new_spanned(tokens, message)
}

/// Refuses what cannot be a named task, pointing at the offending part.
fn check_signature(sig: &syn::Signature) -> syn::Result<()> {
    if let Some(a) = &sig.asyncness {
        return Err(error(
            a,
            "a named task cannot be async: a peer runs it on a worker thread; make it a plain \
             `fn` (tasks that wait on futures help run other tasks meanwhile)",
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(error(
            u,
            "a named task cannot be `unsafe`: any peer may call it",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(error(
            &sig.generics,
            "a named task cannot be generic: every peer must agree on one signature; write \
             one task per concrete type",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Type::ImplTrait(_) | Type::Reference(_) = &**ty
    {
        return Err(error(
            ty,
            "a named task returns an owned serde type: its result may be sent to another \
             peer",
        ));
    }
    if let Some(extra) = sig.inputs.iter().nth(MAX_PARAMS) {
        return Err(error(
            extra,
            "a named task takes at most 12 parameters; group the rest into a struct",
        ));
    }
    Ok(())
}

/// The stored form of one parameter, or why it cannot be one.
fn param(input: &FnArg) -> syn::Result<Param> {
    let ty = match input {
        FnArg::Receiver(r) => {
            return Err(error(
                r,
                "a named task is a free function: it cannot take `self`; take the value as \
                 a parameter",
            ));
        }
        FnArg::Typed(t) => &*t.ty,
    };
    let stored = match ty {
        Type::Reference(r) if r.mutability.is_some() => {
            return Err(error(
                r,
                "a named task cannot take `&mut`: its arguments are shared with other tasks \
                 and may come from another peer; take `&T` or `T` and return what changed",
            ));
        }
        Type::ImplTrait(_) => {
            return Err(error(
                ty,
                "a named task cannot take `impl Trait`: every peer must agree on one \
                 concrete type",
            ));
        }
        // Borrowed forms are lent from their owned form: `&str` from a `String`, `&[T]`
        // from a `Vec<T>`, `&T` from a `T`.
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
                syn::parse_quote_spanned!(r.elem.span()=> ::std::string::String)
            }
            Type::Slice(s) => {
                let elem = &s.elem;
                syn::parse_quote_spanned!(r.elem.span()=> ::std::vec::Vec<#elem>)
            }
            elem => elem.clone(),
        },
        ty => ty.clone(),
    };
    let by_ref = matches!(ty, Type::Reference(_));
    let written = match ty {
        Type::Reference(r) => (*r.elem).clone(),
        ty => ty.clone(),
    };
    Ok(Param {
        ty: stored,
        written,
        by_ref,
    })
}

fn expand(options: Options, function: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    check_signature(sig)?;
    let params = sig
        .inputs
        .iter()
        .map(param)
        .collect::<syn::Result<Vec<_>>>()?;
    let output: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };

    let fn_name = &sig.ident;
    let vis = &function.vis;
    let handle = options
        .handle
        .unwrap_or_else(|| format_ident!("{}Task", camel_case(&fn_name.to_string())));
    let name = match options.name {
        Some(lit) => quote!(#lit),
        None => {
            let f = LitStr::new(&fn_name.to_string(), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), "::", #f))
        }
    };
    let types: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    let vars: Vec<Ident> = (0..params.len()).map(|i| format_ident!("arg{i}")).collect();
    let call_args = params.iter().zip(&vars).map(|(p, v)| {
        if p.by_ref {
            quote!(#v)
        } else {
            quote!(::core::clone::Clone::clone(#v))
        }
    });
    let signature_parts = params.iter().map(|p| {
        let ty = &p.written;
        let amp = if p.by_ref { "&" } else { "" };
        quote!(#amp, ::core::stringify!(#ty), ",")
    });
    // One check per parameter, at its type, so a type that cannot travel is named where
    // it is written.
    let checks = params.iter().map(|p| {
        let ty = &p.ty;
        quote_spanned!(ty.span()=> ::peer_core::ext::portable::<#ty>();)
    });
    let doc = format!("The named task of [`{fn_name}`]: submit it with `Client::submit_named`.");

    Ok(quote! {
        // A named task's parameters are stored owned and lent by reference, so `&Vec<T>` or
        // `&String` is the right type here, not the slice clippy would suggest.
        #[allow(clippy::ptr_arg)]
        #function

        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #handle;

        impl ::peer_core::named::NamedTask for #handle {
            const NAME: &'static str = #name;
            const SIGNATURE: &'static str =
                ::core::concat!("fn(", #(#signature_parts,)* ") -> ", ::core::stringify!(#output));
            type Args = (#(#types,)*);
            type Output = #output;

            #[inline]
            fn call((#(#vars,)*): (#(&#types,)*)) -> #output {
                #fn_name(#(#call_args),*)
            }
        }

        const _: fn() = || {
            #(#checks)*
            ::peer_core::ext::portable::<#output>();
        };

        ::peer_core::ext::inventory::submit! {
            ::peer_core::ext::register::<#handle>()
        }
    })
}

fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}
