//! The code `#[handler]` writes: the impl block as it was, a `Handler` impl that decodes and
//! runs each procedure, and the typed client.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{HandlerImpl, Input, Output, ProcedureFn};

pub fn render(handler: &HandlerImpl) -> TokenStream {
    let item = &handler.item;
    let handler_impl = render_handler(handler);
    let client = render_client(handler);
    quote! {
        #item
        #handler_impl
        #client
    }
}

fn render_handler(handler: &HandlerImpl) -> TokenStream {
    let self_ty = &handler.item.self_ty;
    let name = &handler.handler_name;
    let descriptions = handler.procedures.iter().map(|p| {
        let method = &p.method;
        let params = p.params().map(|param| &param.name);
        let batch = match &p.batch {
            Some(batch) => {
                let max = &batch.max;
                quote!(#max)
            }
            None => quote!(1),
        };
        quote! {
            ::rpc_core::Procedure { method: #method, params: &[#(#params),*], batch: #batch }
        }
    });
    let arms = handler.procedures.iter().map(|p| render_arm(handler, p));
    quote! {
        impl ::rpc_core::Handler for #self_ty {
            fn name(&self) -> &'static str {
                #name
            }

            fn procedures(&self) -> &'static [::rpc_core::Procedure] {
                const PROCEDURES: &[::rpc_core::Procedure] = &[#(#descriptions),*];
                PROCEDURES
            }

            fn invoke(
                self: ::std::sync::Arc<Self>,
                __method: &str,
                __encoding: ::rpc_core::Encoding,
                __bytes: &[u8],
                __cancel: &::rpc_core::Cancellation,
            ) -> ::core::result::Result<::rpc_core::Invocation, ::rpc_core::RpcError> {
                match __method {
                    #(#arms)*
                    _ => ::core::result::Result::Err(::rpc_core::RpcError::UnknownProcedure(
                        ::std::format!("no procedure `{}.{}` is registered", #name, __method),
                    )),
                }
            }
        }
    }
}

fn render_arm(handler: &HandlerImpl, procedure: &ProcedureFn) -> TokenStream {
    let self_ty = &handler.item.self_ty;
    let method = &procedure.method;
    let ident = &procedure.ident;
    let names = procedure.params().map(|p| &p.name);
    let count = procedure.params().count();
    let decodes = procedure.params().enumerate().map(|(i, param)| {
        let var = &param.ident;
        let ty = &param.ty;
        let name = &param.name;
        let take = if i + 1 == count && param.is_string() {
            quote!(rest)
        } else {
            quote!(next)
        };
        quote! { let #var: #ty = __args.#take::<#ty>(#name)?; }
    });
    let uses_cancel = procedure
        .inputs
        .iter()
        .any(|input| matches!(input, Input::Cancellation));
    let vars: Vec<_> = procedure
        .inputs
        .iter()
        .map(|input| match input {
            Input::Wire(param) => {
                let var = &param.ident;
                quote!(#var)
            }
            Input::Cancellation => quote!(__cancel),
        })
        .collect();
    let mut call = if procedure.takes_self {
        quote! { __this.#ident(#(#vars),*) }
    } else {
        quote! { <#self_ty>::#ident(#(#vars),*) }
    };
    let this = if procedure.takes_self {
        quote! { let __this = ::std::sync::Arc::clone(&self); }
    } else {
        quote! {}
    };
    let cancel = if uses_cancel {
        quote! { let __cancel = ::core::clone::Clone::clone(__cancel); }
    } else {
        quote! {}
    };
    if procedure.is_async {
        call = quote! { #call.await };
    }
    let finish = match &procedure.output {
        Output::Value(_) => quote! { ::rpc_core::__private::finish(__encoding, &__value) },
        Output::Fallible { .. } => quote! {
            match __value {
                ::core::result::Result::Ok(__ok) => ::rpc_core::__private::finish(__encoding, &__ok),
                ::core::result::Result::Err(__err) => {
                    #[allow(unused_imports)]
                    use ::rpc_core::__private::{ExactRpcError as _, DisplayError as _};
                    ::core::result::Result::Err((&::rpc_core::__private::ErrorWrap(__err)).to_rpc_error())
                }
            }
        },
    };
    let invocation = if let Some(batch) = &procedure.batch {
        let max = &batch.max;
        let item = &batch.output_item;
        let param = &vars[0];
        let run = if procedure.takes_self {
            quote! { move |__values| __this.#ident(__values) }
        } else {
            quote! { |__values| <#self_ty>::#ident(__values) }
        };
        quote! {
            ::rpc_core::Invocation::Batch(::rpc_core::BatchCall::new(
                #max,
                #param,
                __encoding,
                #run,
                |__encoding: ::rpc_core::Encoding, __value: #item| #finish,
            ))
        }
    } else if procedure.is_async {
        quote! {
            ::rpc_core::Invocation::Async(::std::boxed::Box::pin(async move {
                let __value = #call;
                #finish
            }))
        }
    } else {
        quote! {
            ::rpc_core::Invocation::Blocking(::std::boxed::Box::new(move || {
                let __value = #call;
                #finish
            }))
        }
    };
    quote! {
        #method => {
            let mut __args = ::rpc_core::__private::Arguments::new(__encoding, __bytes, &[#(#names),*])?;
            #(#decodes)*
            __args.finish()?;
            #this
            #cancel
            ::core::result::Result::Ok(#invocation)
        }
    }
}

fn render_client(handler: &HandlerImpl) -> TokenStream {
    let self_ident = &handler.self_ident;
    let client = format_ident!("{}Client", self_ident);
    let name = &handler.handler_name;
    let summary = format!(
        "Typed client for the procedures of [`{self_ident}`], served as `{name}.*`; generated by `#[handler]`."
    );
    let methods = handler.procedures.iter().map(|p| {
        let ident = &p.ident;
        let docs = &p.docs;
        let method = &p.method;
        let params = p.params().map(|param| {
            let var = &param.ident;
            let ty = &param.ty;
            quote!(#var: #ty)
        });
        let encodes = p.params().map(|param| {
            let var = &param.ident;
            let ty = &param.ty;
            quote_spanned! {ty.span()=>
                ::rpc_core::__private::encode_argument::<#ty>(&mut __args, &#var)?;
            }
        });
        let ok = p.output.ok_type();
        quote! {
            #(#docs)*
            ///
            /// # Errors
            /// The procedure's error, or any [`rpc_core::RpcError`] of the transport.
            pub async fn #ident(&self, #(#params),*) -> ::core::result::Result<#ok, ::rpc_core::RpcError> {
                let procedure = ::std::format!("{}.{}", self.handler, #method);
                let mut __args = ::std::vec::Vec::new();
                #(#encodes)*
                self.client.call_bincode(&procedure, __args).await
            }
        }
    });
    quote! {
        #[doc = #summary]
        #[derive(Clone, Debug)]
        pub struct #client {
            client: ::rpc_core::Client,
            handler: ::std::string::String,
        }

        impl #client {
            /// A client calling over `transport`, with the default 30 s timeout.
            pub fn new<T: ::rpc_core::Transport + 'static>(transport: T) -> Self {
                Self::from_client(::rpc_core::Client::new(transport))
            }

            /// A client calling through an existing [`rpc_core::Client`] (sharing its transport).
            pub fn from_client(client: ::rpc_core::Client) -> Self {
                Self { client, handler: ::std::string::String::from(#name) }
            }

            /// The same client calling the handler registered under another name
            /// (`Registry::register_as`).
            pub fn named(mut self, handler: impl ::core::convert::Into<::std::string::String>) -> Self {
                self.handler = handler.into();
                self
            }

            /// The same client with another timeout for its calls.
            pub fn with_timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.client = self.client.with_timeout(timeout);
                self
            }

            #(#methods)*
        }
    }
}
