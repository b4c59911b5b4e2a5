<?xml version="1.0" encoding="UTF-8"?>
<!-- Renders feed.atom readably when opened in a browser (referenced by its xml-stylesheet PI). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/atom:feed">
    <html lang="{@xml:lang}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="atom:title"/> (Atom feed)</title>
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
          <h1><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a></h1>
          <p><xsl:value-of select="atom:subtitle"/></p>
          <p class="note">This is an Atom feed. Subscribe by copying its address into your feed reader:
            <code><xsl:value-of select="atom:link[@rel='self']/@href"/></code></p>
        </header>
        <main>
          <xsl:apply-templates select="atom:entry"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article lang="{@xml:lang}">
      <h2><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a></h2>
      <p class="meta">
        <xsl:value-of select="atom:author/atom:name"/>
        <xsl:text> · </xsl:text>
        <time datetime="{atom:published}"><xsl:value-of select="atom:published"/></time>
      </p>
      <div class="summary">
        <xsl:value-of select="atom:summary" disable-output-escaping="yes"/>
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
