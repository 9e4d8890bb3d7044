window.onerror = function (message) {
  document.body.dataset.reportStatus = 'script-error: ' + message;
};
window.addEventListener('load', function () {
  if ((document.body.dataset.reportStatus || '').indexOf('script-error') === 0) return;
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i];
    if (!(img.complete && img.naturalWidth > 0)) broken++;
  }
  document.body.dataset.reportStatus = broken ? 'broken-images:' + broken : 'ok';
});
