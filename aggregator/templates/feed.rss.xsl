<?xml version="1.0" encoding="UTF-8"?>
<!-- Renders feed.rss readably when opened in a browser (referenced by its xml-stylesheet PI). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/rss/channel">
    <html lang="{language}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="title"/> (RSS feed)</title>
        <style>
          body { margin: 0 auto; max-width: 60rem; padding: 1rem; font: 16px/1.55 system-ui, sans-serif; }
          .note { background: #fff6d6; color: #333; border-radius: .4rem; padding: .6rem 1rem; }
          article { border-bottom: 1px solid #ddd; padding: .5rem 0 1rem; overflow-wrap: anywhere; }
          h2 { font-size: 1.15rem; margin: .5rem 0 .2rem; }
          .meta { color: #666; font-size: .9rem; margin: 0; }
          img { max-width: 100%; height: auto; }
        </style>
      </head>
      <body>
        <header>
          <h1><a href="{link}"><xsl:value-of select="title"/></a></h1>
          <p><xsl:value-of select="description"/></p>
          <p class="note">This is an RSS feed. Subscribe by copying its address into your feed reader:
            <code><xsl:value-of select="atom:link[@rel='self']/@href"/></code></p>
        </header>
        <main>
          <xsl:apply-templates select="item"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <article>
      <h2><a href="{link}"><xsl:value-of select="title"/></a></h2>
      <p class="meta">
        <xsl:value-of select="dc:creator"/>
        <xsl:text> · </xsl:text>
        <xsl:value-of select="pubDate"/>
      </p>
      <div class="summary">
        <xsl:value-of select="description" disable-output-escaping="yes"/>
      </div>
      <xsl:if test="atom:link[@rel='related']">
        <ul class="related">
          <xsl:for-each select="atom:link[@rel='related']">
            <li><a rel="related" href="{@href}"><xsl:value-of select="@title"/></a></li>
          </xsl:for-each>
        </ul>
      </xsl:if>
    </article>
  </xsl:template>
</xsl:stylesheet>
