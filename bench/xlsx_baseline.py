"""The Python baseline for report.inventory as XLSX: openpyxl in write-only
mode (its streaming writer) writing the same 18 columns for N rows of the
same shape as bench/reports.sh's workspaces, timed from the first row to
the saved file. Run by bench/reports.sh; prints one RESULT line.

    python3 bench/xlsx_baseline.py [N=50000] [OUT]
"""

import datetime
import os
import sys
import tempfile
import time

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(tempfile.mkdtemp(), "baseline.xlsx")
    start = time.perf_counter()
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Inventory")
    sheet.freeze_panes = "A2"
    names = ["account", "region", "directory_id", "workspace_id", "user_name", "computer_name", "ip_address",
             "bundle_id", "bundle_name", "compute_type", "running_mode", "auto_stop_timeout_minutes", "state",
             "first_seen_at", "deleted_at", "last_known_user_connection", "days_since_last_connection", "tags"]
    bold = Font(bold=True)
    header = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    now = datetime.datetime(2026, 12, 1)
    for i in range(1, n + 1):
        seen = now - datetime.timedelta(days=i % 90)
        sheet.append([
            f"acct-{i % 10}", "eu-west-1", f"d-{i % 7}", f"ws-{i:08d}", f"user{i}", f"PC-{i}",
            f"10.0.{i % 250}.{i % 200}", f"wsb-{i % 5}", None, "STANDARD", "AUTO_STOP", 60, "AVAILABLE",
            now, None, seen, i % 90, f"cost_center={i % 90}; team=team-{i % 20}",
        ])
    sheet.auto_filter.ref = f"A1:R{n + 1}"
    book.save(out)
    secs = time.perf_counter() - start
    print(f"RESULT report=inventory format=xlsx writer=openpyxl-write-only rows={n} bytes={os.path.getsize(out)} "
          f"seconds={secs:.2f} rows_per_s={n / secs:.0f}")


if __name__ == "__main__":
    main()
