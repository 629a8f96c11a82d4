//! Time, and handing control back to the browser: the CPU backend's
//! stage clock and its yields, and the GPU read-back's wait for the
//! browser's error events.

#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    thread_local!(static T0: std::time::Instant = std::time::Instant::now());
    T0.with(|t| t.elapsed().as_secs_f64() * 1e3)
}

#[cfg(not(target_arch = "wasm32"))]
pub async fn yield_now() {}

/// `performance.now()` on the page or in a worker.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    use wasm_bindgen::JsCast;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    let now = perf.as_ref().and_then(|p| js_sys::Reflect::get(p, &"now".into()).ok()).and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    match (perf, now) {
        (Some(p), Some(f)) => f.call0(&p).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now),
        _ => js_sys::Date::now(),
    }
}

/// Resolves on a fresh task (a MessageChannel message: no timer clamping),
/// so the page can paint and handle input between parts of a frame.
#[cfg(target_arch = "wasm32")]
pub async fn yield_now() {
    let Ok(ch) = web_sys::MessageChannel::new() else { return };
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        ch.port1().set_onmessage(Some(&resolve));
        let _ = ch.port2().post_message(&wasm_bindgen::JsValue::NULL);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    // Closed, so an open port keeps no event loop (Node's, a worker's) alive.
    ch.port1().close();
    ch.port2().close();
}
