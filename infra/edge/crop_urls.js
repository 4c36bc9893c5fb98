// CloudFront viewer-request function (cloudfront-js-2.0) of the crop URL distribution.
//
// Only crop URLs pass (404 for every other path, so the CDN is no way around the API's
// authorization), and only in their one spelling (400 for any other): each segment after
// /v1/crops/ must be exactly what autocrop.urls writes, Python's quote(segment, safe="")
// of its decoded text (UTF-8, uppercase hex, only A-Z a-z 0-9 _ . - ~ left as they are),
// and never "." or "..". Here the URI is still as the viewer sent it; API Gateway hands the
// function the path already decoded, so this is the last place another spelling of a signed
// URL (be%61ch.jpg, 2019%2Fsummer, %2f) can be told apart, and refused before it becomes a
// cache entry of its own and a fresh render.
//
// infra/edge/function_code.js hands this file to serverless.yml; tests/infra/test_crop_url_edge.py
// runs it under node against the same table of spellings as the Python rule.

var PREFIX = '/v1/crops/';

// Python's quote(text, safe=""): encodeURIComponent leaves ! ' ( ) * as they are, quote does not.
function quoteSegment(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, function (c) {
    return '%' + c.charCodeAt(0).toString(16).toUpperCase();
  });
}

function isCanonicalSegment(segment) {
  if (segment === '.' || segment === '..') {
    return false;
  }
  var text;
  try {
    text = decodeURIComponent(segment);
  } catch (e) {
    return false; // a stray '%' or bytes that are not UTF-8
  }
  // (a "/" inside would be %2F: the key's segments are split at every "/")
  return text.indexOf('/') === -1 && quoteSegment(text) === segment;
}

function handler(event) {
  var uri = event.request.uri;
  if (uri.indexOf(PREFIX) !== 0) {
    return { statusCode: 404, statusDescription: 'Not Found' };
  }
  var segments = uri.slice(PREFIX.length).split('/');
  for (var i = 0; i < segments.length; i++) {
    if (!isCanonicalSegment(segments[i])) {
      return { statusCode: 400, statusDescription: 'Bad Request' };
    }
  }
  return event.request;
}
