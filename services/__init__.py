"""The web services Helm deploys: trigger (events -> jobs) and products (STAC + tiles + map)."""
