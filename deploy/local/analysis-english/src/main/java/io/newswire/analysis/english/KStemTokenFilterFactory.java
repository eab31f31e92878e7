/*
 * Copyright the Newswire authors. Licensed under the Apache License, Version 2.0.
 */
package io.newswire.analysis.english;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.en.KStemFilter;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;

/** Token filter type {@code kstem}: Lucene's KStemFilter, no settings (as production). */
@NamedComponent("kstem")
public class KStemTokenFilterFactory implements TokenFilterFactory {
    @Override
    public TokenStream create(TokenStream tokenStream) {
        return new KStemFilter(tokenStream);
    }
}
