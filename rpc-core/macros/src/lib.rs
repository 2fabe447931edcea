//! The `#[handler]` attribute of rpc-core. Use it through `rpc_core::handler`, which documents
//! it; this crate only holds the code generation.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod model;
mod render;

use proc_macro::TokenStream;

/// Turns every `pub fn` of an `impl` block into a procedure `handler.method`, implements
/// `rpc_core::Handler` for the type, and generates a typed client `<Type>Client`.
///
/// See `rpc_core::handler` for the full description and an example.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    let result = model::Attribute::parse(attr.into())
        .and_then(|attribute| model::HandlerImpl::parse(attribute, item.into()))
        .map(|handler| render::render(&handler));
    match result {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}
