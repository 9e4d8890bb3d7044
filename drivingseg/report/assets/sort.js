document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('thead th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      var num = th.dataset.type === 'num', body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (num) {
          var fx = parseFloat(x.dataset.v), fy = parseFloat(y.dataset.v);
          if (isNaN(fx) || isNaN(fy)) return (isNaN(fx) ? 1 : 0) - (isNaN(fy) ? 1 : 0);
          return asc ? fx - fy : fy - fx;
        }
        var c = x.textContent.localeCompare(y.textContent);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
