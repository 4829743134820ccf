// The API reference: Swagger UI from our own files, on /docs/openapi.json.
// "Try it out" only reaches this origin, and only with a test-mode key: the key the reader
// pastes under Authorize lives in this tab's memory (persistAuthorization is off).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }

  function header(req, name) {
    var headers = req.headers || {};
    for (var key in headers) {
      if (Object.prototype.hasOwnProperty.call(headers, key) && key.toLowerCase() === name) {
        return String(headers[key]);
      }
    }
    return "";
  }

  function guard(req) {
    var target = new URL(req.url, window.location.href);
    if (target.origin !== window.location.origin) {
      throw new Error(root.dataset.otherOrigin);
    }
    if (/^Bearer\s+sk_live_/i.test(header(req, "authorization"))) {
      throw new Error(root.dataset.liveRefused);
    }
    return req;
  }

  // Swagger UI puts a deep-link <a href> inside each operation's toggle <button> (nested
  // interactive controls for screen readers); the URL hash still deep-links without it.
  function plainDeepLinks(system) {
    var React = system.React || window.React;
    return {components: {DeepLink: function (props) {
      return React.createElement("span", null, props.text);
    }}};
  }

  // What axe-core finds in Swagger UI's markup and CSS cannot fix: selects without a name
  // (the server list, enum parameters) and scrollable code samples out of keyboard reach.
  function label(node) {
    node.querySelectorAll("select:not([aria-label])").forEach(function (select) {
      var row = select.closest("[data-param-name]");
      var name = row ? row.getAttribute("data-param-name") : select.id === "servers" ? "Servers" : "";
      if (name) {   // their <label>s wrap the select without any text of their own
        select.setAttribute("aria-label", name);
      }
    });
    node.querySelectorAll("pre:not([tabindex]), .microlight:not([tabindex])").forEach(function (block) {
      block.setAttribute("tabindex", "0");
    });
  }
  var pending = false;
  new MutationObserver(function () {
    if (!pending) {
      pending = true;
      window.requestAnimationFrame(function () {
        pending = false;
        label(root);
      });
    }
  }).observe(root, {childList: true, subtree: true});

  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    presets: [window.SwaggerUIBundle.presets.apis],
    plugins: [plainDeepLinks],
    layout: "BaseLayout",
    deepLinking: true,
    docExpansion: "none",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    filter: true,
    persistAuthorization: false,
    syntaxHighlight: false,   // its themes colour some tokens below 4.5:1 contrast
    tryItOutEnabled: false,
    validatorUrl: null,
    withCredentials: false,
    requestInterceptor: guard,
    onComplete: function () {
      var loading = document.querySelector(".loading");
      if (loading) {
        loading.remove();
      }
      document.documentElement.dataset.ready = "1";
    }
  });
})();
