//! `#[task]`: turns a plain function into a named task of `peer-core`.
//!
//! Used through `peer_core::task`; see `peer_core::named` for what it generates and why.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token, Type, parse_macro_input};

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
/// Parameters taken by reference (`&T`) are lent from the stored value; parameters taken by
/// value are cloned from it, so they must be `Clone`. Every parameter and the result must be
/// `serde` types.
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
    /// The stored (and encoded) type.
    ty: Type,
    /// Whether the function takes it by reference; otherwise it is cloned.
    by_ref: bool,
}

fn expand(options: Options, function: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new(a.span(), "a named task cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a named task cannot be generic: every peer must agree on one signature",
        ));
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Typed(t) => t,
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(r.span(), "a named task cannot take `self`"));
            }
        };
        if !matches!(&*typed.pat, Pat::Ident(_) | Pat::Wild(_)) {
            return Err(syn::Error::new(
                typed.pat.span(),
                "use a plain name for each parameter of a named task",
            ));
        }
        params.push(match &*typed.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(syn::Error::new(
                    r.span(),
                    "a named task cannot take `&mut`: its inputs are shared",
                ));
            }
            Type::Reference(r) => Param {
                ty: (*r.elem).clone(),
                by_ref: true,
            },
            ty => Param {
                ty: ty.clone(),
                by_ref: false,
            },
        });
    }
    if params.len() > 6 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a named task takes at most 6 parameters; group more into a struct",
        ));
    }
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
        let ty = &p.ty;
        let amp = if p.by_ref { "&" } else { "" };
        quote!(#amp, ::core::stringify!(#ty), ",")
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

        ::peer_core::named::__private::inventory::submit! {
            ::peer_core::named::Registration::of::<#handle>()
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
